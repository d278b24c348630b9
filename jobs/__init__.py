"""Background job functions, run by RQ workers (`rq worker -w jobs.worker.Worker`).

Every job is a plain function in a module here, decorated with
`jobs.base.job` so it runs inside the Flask app context and calls services
like any request does.
"""
