"""The test suite; pytest rewrites the asserts of its helpers (`tests.support`) as of its tests."""

import pytest

pytest.register_assert_rewrite("tests.support")
