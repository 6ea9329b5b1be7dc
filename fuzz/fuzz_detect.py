"""atheris harness for the 'detect' stage (see stages.py). Run through run_all.sh, or directly:

    .venv/bin/python fuzz/fuzz_detect.py fuzz/.seeds/detect -max_total_time=60
"""

import common

common.instrumented_safeload()
import stages  # noqa: E402

if __name__ == "__main__":
    stages.prime()
    common.main("detect", stages.STAGES["detect"])
