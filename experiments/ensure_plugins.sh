# Sourced by the GPU check scripts: the task and VAE plug-ins are found through the package's entry points, so a
# machine that only has the repository on PYTHONPATH gets an editable install without dependencies (offline).
if ! ${PY:-python3} -c "from importlib.metadata import entry_points as e; assert e(group='irg_rl.tasks')" 2>/dev/null; then
  ${PY:-python3} -m pip install -q --no-deps --no-build-isolation -e . || echo "warning: could not register the irg-rl entry points" >&2
fi
