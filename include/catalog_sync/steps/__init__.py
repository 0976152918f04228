"""The sync's steps: plan, scope, extract, diff, export, commit, report. Each is a plain function of (settings, plan)."""
