"""atheris harness for the 'formats' stage (see stages.py). Run through run_all.sh, or directly:

    .venv/bin/python fuzz/fuzz_formats.py fuzz/.seeds/formats -max_total_time=60
"""

import common

common.instrumented_safeload()
import stages  # noqa: E402

if __name__ == "__main__":
    stages.prime()
    common.main("formats", stages.STAGES["formats"])
