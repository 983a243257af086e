# Every target that needs Python builds .venv first, so each works alone on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_BARS ?= ../shared/data/bars
# The peer engines, pinned, each in its own virtualenv under bench/ (git-ignored; never part of
# make test): the newest NautilusTrader that installs on Python 3.11 is 1.221.0 (the later ones
# need a newer Python). pandas for the peers' own CSV reading is pinned with them.
BACKTRADER_VENV := bench/.venv-backtrader
NAUTILUS_VENV := bench/.venv-nautilus
BACKTRADER_PIN := backtrader==1.9.78.123 pandas==2.2.3
NAUTILUS_PIN := nautilus_trader==1.221.0

.PHONY: install test lint fmt run-paper sim bench bench-peers chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,cluster]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The long scenarios (pytest -m long: whole days in a real daemon process) run in make chaos.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not long"

# The long chaos run: refusal sequences, busy and real-bar scenarios (faults, aimed SIGKILLs,
# restarts), the model-based exit test, bad-input fuzzing and a soak, then one table. Repeat
# one scenario with e.g. CHAOS_ARGS="--scenarios 0 --busy-scenarios 0 --refusal-point EOD
# --refusal-n 3 --model-examples 0 --fuzz-examples 0 --soak-days 0 --keep" (README "Reliability").
CHAOS_ARGS ?= --seed 1 --scenarios 4 --busy-scenarios 7 --refusals alternate --model-examples 2000 \
	--fuzz-examples 300 --soak-days 5
chaos: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile -m long
	$(BIN)/python -m tests.chaos.run $(CHAOS_ARGS)

run-paper: $(STAMP)
	$(BIN)/magellan run --config configs/magellan.toml

sim: $(STAMP)
	$(BIN)/magellan sim --port 8700

# Every bench/bench_*.py in turn; each appends its figures to bench/out/figures.jsonl (bench/
# common.py's report()), emptied first, and bench/goals.py prints them last as one table
# against issue 19's goals. A benchmark that fails is named after the table (its figures read
# "not measured") and fails the target; the others still run.
bench: $(STAMP) $(BACKTRADER_VENV)/.installed $(NAUTILUS_VENV)/.installed
	@mkdir -p bench/out && : > bench/out/figures.jsonl
	@failed=""; for b in bench/bench_*.py; do $(BIN)/python $$b || failed="$$failed $$b"; done; \
	$(BIN)/python bench/goals.py; \
	if [ -n "$$failed" ]; then echo "# failed:$$failed"; exit 1; fi

# The peer engines (variables at the top), installed by bench-peers and bench.

$(BACKTRADER_VENV)/.installed: Makefile
	test -x $(BACKTRADER_VENV)/bin/python || $(PYTHON) -m venv $(BACKTRADER_VENV)
	$(BACKTRADER_VENV)/bin/pip install --quiet $(BACKTRADER_PIN)
	touch $@

$(NAUTILUS_VENV)/.installed: Makefile
	test -x $(NAUTILUS_VENV)/bin/python || $(PYTHON) -m venv $(NAUTILUS_VENV)
	$(NAUTILUS_VENV)/bin/pip install --quiet $(NAUTILUS_PIN)
	touch $@

# Our engine against backtrader (runonce and next) and NautilusTrader on the same shared 1Min
# bars, one table (README "Performance"); BENCH_PEERS_ARGS e.g. "--start 2024-04-01 --end 2024-04-05".
BENCH_PEERS_ARGS ?=
bench-peers: $(STAMP) $(BACKTRADER_VENV)/.installed $(NAUTILUS_VENV)/.installed
	$(BIN)/python bench/bench_peers.py $(BENCH_PEERS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# install-systemd: install the daemon as a systemd service on this host (as root; read first).
# It never starts anything and never overwrites a config or credentials file already there.
#   sudo make install-systemd                 -> magellan.service, config in /etc/magellan
#   sudo make install-systemd INSTANCE=main   -> magellan@main.service, config in /etc/magellan/main
# Steps: a `magellan` system user; a venv in /opt/magellan/.venv with this checkout installed
# (not editable); the units in /etc/systemd/system; the example configs in /etc/magellan
# (root:magellan 0640, state_dir pointed at the unit's StateDirectory); the credentials file
# magellan.env (root:root 0600, read by systemd only); `systemctl daemon-reload`.
INSTANCE ?=
OPT_DIR := /opt/magellan
ETC_DIR := /etc/magellan$(if $(INSTANCE),/$(INSTANCE))
UNIT_NAME := magellan$(if $(INSTANCE),@$(INSTANCE)).service
# The unit's StateDirectory=, also written into the installed config (replacing the
# checkout's "../var") so the operator's CLI verbs find the same ledger.
STATE_DIR := /var/lib/magellan$(if $(INSTANCE),/$(INSTANCE))

.PHONY: install-systemd
install-systemd:
	@test "$$(id -u)" = 0 || { echo "install-systemd: run it as root: sudo make install-systemd"; exit 1; }
	@command -v systemctl >/dev/null || { echo "install-systemd: systemctl not found"; exit 1; }
	getent passwd magellan >/dev/null || useradd --system --user-group --home-dir /var/lib/magellan \
		--no-create-home --shell /usr/sbin/nologin magellan
	install -d -m 0755 $(OPT_DIR)
	test -x $(OPT_DIR)/.venv/bin/python || $(PYTHON) -m venv $(OPT_DIR)/.venv
	$(OPT_DIR)/.venv/bin/pip install --quiet --upgrade pip
	$(OPT_DIR)/.venv/bin/pip install --quiet --upgrade .
	install -m 0644 README.md $(OPT_DIR)/README.md
	install -m 0644 systemd/magellan.service systemd/magellan@.service /etc/systemd/system/
	install -d -m 0750 -o root -g magellan /etc/magellan $(ETC_DIR)
	for f in configs/*.toml; do \
		test -e $(ETC_DIR)/$$(basename $$f) || install -m 0640 -o root -g magellan $$f $(ETC_DIR)/; \
	done
	sed -i 's#^state_dir = "\.\./var"#state_dir = "$(STATE_DIR)"#' $(ETC_DIR)/magellan.toml
	test -e $(ETC_DIR)/magellan.env || \
		install -m 0600 -o root -g root systemd/magellan.env.example $(ETC_DIR)/magellan.env
	systemctl daemon-reload
	@echo "installed $(UNIT_NAME). Next: put the Alpaca keys in $(ETC_DIR)/magellan.env,"
	@echo "check $(ETC_DIR)/magellan.toml, then: systemctl enable --now $(UNIT_NAME)"
