"""The sync's steps: plan, extract, diff, export, commit, report. Each is a plain function of
(settings, plan); the Airflow tasks and the CLI (`run_sync`) call these same functions, and
steps pass data only as files in the run's staging folder."""

from catalog_sync.steps.commit import commit
from catalog_sync.steps.diff import diff
from catalog_sync.steps.export import export, export_catalog
from catalog_sync.steps.extract import extract
from catalog_sync.steps.plan import plan
from catalog_sync.steps.report import report
from catalog_sync.steps.run import RunPlan, SyncRequest, Workspace
from catalog_sync.steps.sync import run_sync

__all__ = ["RunPlan", "SyncRequest", "Workspace", "commit", "diff", "export", "export_catalog", "extract", "plan",
           "report", "run_sync"]
