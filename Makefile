# Every target sets up what it needs (scripts/venv.sh makes .venv on first use).
.PHONY: test main-job numbers lint-workflows

test:            ## the test suite (what CI runs)
	bash scripts/test.sh

main-job:        ## asv over recent history, dashboard published, p95 flags printed
	bash scripts/main-job.sh

numbers:         ## docs/numbers.md from docs/measurements/, then the docs checked against it
	python3 -m kvbench.cli numbers
	python3 -m kvbench.cli numbers --check
