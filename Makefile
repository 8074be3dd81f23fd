# Every target sets up what it needs (scripts/venv.sh makes .venv on first use).
.PHONY: test main-job numbers screenshots lint-workflows

test:            ## the test suite (what CI runs)
	bash scripts/test.sh

main-job:        ## asv over recent history, dashboard published, p95 flags printed
	bash scripts/main-job.sh

numbers:         ## docs/numbers.md from docs/measurements/, then the docs checked against it
	py=$$(bash scripts/venv.sh test | tail -n 1) && "$$py" tools/numbers_page.py && "$$py" tools/numbers_page.py --check

screenshots:     ## docs/img/*.png: the p95 page and asv's dashboard over planted results (needs chromium, npm)
	py=$$(bash scripts/venv.sh test | tail -n 1) && "$$py" scripts/screenshots.py
