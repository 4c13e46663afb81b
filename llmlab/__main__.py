from llmlab import ranks
from llmlab.cli import main

code = main()
if ranks.under_torchrun():  # (a rank of a job: see ranks.exit_rank)
    ranks.exit_rank(code)
raise SystemExit(code)
