"""The Airflow glue: settings from Connections and Variables, the hooks, the task chain both DAGs use."""
