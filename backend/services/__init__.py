"""Use cases: keyword-only, typed functions over the models.

Services own business rules and transactions, raise `backend.errors`
exceptions (never HTTP), and publish domain events after commit.
"""
