"""Airflow's `[core] hostname_callable` for several Celery workers on one machine.

Airflow records get_hostname() on every task instance it runs. Workers on separate machines
differ by host name; two workers here would both record this machine's. Each worker is
started with its own CFPB_CELERY_WORKER (scripts/airflow_celery.sh sets it), and

    AIRFLOW__CORE__HOSTNAME_CALLABLE=support.worker_hostname.hostname

with tests/ on PYTHONPATH makes the task instances say which worker ran them. Processes
without the variable (the scheduler, the CLI) keep Airflow's default.
"""

from __future__ import annotations

import os

WORKER_ENV = "CFPB_CELERY_WORKER"


def hostname() -> str:
    from airflow.utils.net import getfqdn

    worker = os.environ.get(WORKER_ENV)
    return f"{worker}@{getfqdn()}" if worker else getfqdn()
