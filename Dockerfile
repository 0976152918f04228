# Astro Runtime for Airflow 3.3 (Runtime 3.x tags read "3.<airflow minor>-<patch>").
# Keep the tag equal to deployment.configuration.runtime_version in astro.yaml.
# The Runtime image's ONBUILD steps install requirements.txt and copy the
# project (dags/, include/, plugins/) into /usr/local/airflow.
FROM astrocrpublic.azurecr.io/runtime:3.3-2

# The engine is the package include/catalog_sync; make `import catalog_sync`
# work in every Airflow component (scheduler, dag-processor, workers, API server).
ENV PYTHONPATH=/usr/local/airflow/include:$PYTHONPATH
# Installed (editable, no dependencies: requirements.txt has them) so that Airflow finds its
# provider entry point: the Catalog Sync connection types and their form fields.
RUN pip install --no-cache-dir --no-deps -e /usr/local/airflow
