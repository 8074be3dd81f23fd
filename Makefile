# Every target sets up what it needs (scripts/venv.sh makes .venv on first use).
.PHONY: test main-job numbers lint-workflows

test:            ## the test suite (what CI runs)
	bash scripts/test.sh

main-job:        ## asv over recent history, dashboard published, p95 flags printed
	bash scripts/main-job.sh

numbers:         ## docs/numbers.md from the measurement files in docs/measurements/
	python3 -m kvbench.cli numbers
