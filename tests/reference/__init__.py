"""Independent transcriptions of the references farms-viz claims to follow (see each module).

``release``: the FARMS release's estimator; ``ww``: WeightWatcher 0.7.7's default alpha.
Tests import them as ``from reference import release, ww`` (tests/ is on sys.path) and
``check_real.py`` holds them against the real code where that is installed.
"""
