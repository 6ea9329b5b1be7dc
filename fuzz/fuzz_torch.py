"""atheris harness for the 'torch' stage (see stages.py). Run through run_all.sh, or directly:

    .venv/bin/python fuzz/fuzz_torch.py fuzz/.seeds/torch -max_total_time=60
"""

import common

common.instrumented_safeload()
import stages  # noqa: E402

if __name__ == "__main__":
    stages.prime()
    common.main("torch", stages.STAGES["torch"])
