"""Thin Celery wrappers over the outbox and reminders; each is safe to run twice."""
from celery import shared_task

from . import outbox, reminders, slack_identity
from .slackbot import tasks as slackbot_tasks  # noqa: F401 - registers the Slack answers with every worker

# Seconds beat's sweeps spend at most on one run: behind a backlog they would otherwise take minutes,
# and beat's other tasks wait behind them on the periodic queue. What is left waits for the next run.
SWEEP_BUDGET = 5


# Handed over after commit (outbox.deliver_after_commit): calls close together travel as one.
@shared_task(name="notifications.tasks.deliver", ignore_result=True, coalesce=True, broker_down=outbox.broker_down)
def deliver(keys):
    """Expand the outbox events a committed change wrote and send their rows (or send the rows named); returns how many this run sent."""
    return outbox.deliver(keys)


@shared_task(name="notifications.tasks.sweep_outbox", ignore_result=True)
def sweep_outbox():
    """Expand and send what is due: never handed to a worker, waiting for a retry, or left by a dead worker."""
    return outbox.sweep(budget=SWEEP_BUDGET)


@shared_task(name="notifications.tasks.send_reminders", ignore_result=True)
def send_reminders():
    """Queue starts-soon, ends-soon and ended reminders, then send what is due."""
    counts = reminders.send_reminders()
    outbox.sweep(budget=SWEEP_BUDGET)
    return counts


@shared_task(name="notifications.tasks.link_slack_members", ignore_result=True)
def link_slack_members():
    """Fill in members' Slack ids from their e-mail addresses."""
    return slack_identity.link_members()
