# Stack targets: Docker Compose (laptop) and kind/Helm (shared cluster). Included by the top
# Makefile (`-include mk/*.mk`). Needs docker compose / kind / helm / kubectl on the PATH.
COMPOSE ?= docker compose
COMPOSE_DIR := compose
# METRICS=mimir adds the Mimir override (metrics to Mimir instead of Prometheus)
METRICS ?= prometheus
COMPOSE_FILES := -f $(COMPOSE_DIR)/docker-compose.yml $(if $(filter mimir,$(METRICS)),-f $(COMPOSE_DIR)/docker-compose.mimir.yml,)
# PROFILES=sonarqube starts SonarQube too
PROFILES ?=
DC := $(COMPOSE) -p watchtower $(COMPOSE_FILES) $(foreach p,$(PROFILES),--profile $(p))

KIND ?= kind
HELM ?= helm
KUBECTL ?= kubectl
CLUSTER ?= watchtower
NAMESPACE ?= watchtower
HELM_NS := -n $(NAMESPACE)
# Dual-write (Sumo Logic) values for the Watchtower release; local-only is the chart default.
WATCHTOWER_VALUES ?= helm/values/watchtower.yaml
WATCHTOWER_DUALWRITE_VALUES ?= helm/values/watchtower-dualwrite.yaml

.PHONY: docker-up docker-down docker-status docker-logs docker-clean \
        setup deploy deploy-tempo deploy-loki deploy-mimir deploy-grafana deploy-watchtower \
        status logs teardown enable-local-only disable-local-only test-data render

# === Docker Compose ==========================================================================
docker-up:
	$(DC) up -d --build
	@echo "Grafana http://localhost:3000 (admin/admin, anonymous viewing on) | OTLP localhost:4317 (gRPC), localhost:4318 (HTTP)"
	@echo "Watchtower health http://localhost:13133/ | self-metrics http://localhost:8888/metrics"

docker-down:
	$(DC) down

docker-status:
	$(DC) ps
	@curl -fsS -o /dev/null -w "watchtower health: %{http_code}\n" http://localhost:13133/ || echo "watchtower health: unreachable"

docker-logs:
	$(DC) logs -f --tail=100 watchtower

docker-clean:
	$(DC) --profile sonarqube down -v --remove-orphans

# === kind / Helm =============================================================================
setup:
	$(KIND) create cluster --name $(CLUSTER) --config helm/kind/cluster-config.yaml
	$(KUBECTL) create namespace $(NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(HELM) repo add grafana https://grafana.github.io/helm-charts
	$(HELM) repo update
	@echo "Cluster '$(CLUSTER)' ready. Run 'make deploy'."

deploy: deploy-tempo deploy-loki deploy-mimir deploy-grafana deploy-watchtower
	@echo "Deployed. 'make status' to watch pods; Grafana http://localhost:3000, OTLP localhost:4317/4318."

deploy-tempo:
	$(HELM) upgrade --install tempo grafana/tempo $(HELM_NS) -f helm/values/tempo.yaml

deploy-loki:
	$(HELM) upgrade --install loki grafana/loki $(HELM_NS) -f helm/values/loki.yaml

deploy-mimir:
	$(HELM) upgrade --install mimir grafana/mimir-distributed $(HELM_NS) -f helm/values/mimir.yaml

deploy-grafana:
	$(KUBECTL) create configmap watchtower-dashboards $(HELM_NS) \
	  --from-file=$(COMPOSE_DIR)/grafana/dashboards/ --dry-run=client -o yaml \
	  | $(KUBECTL) label --local -f - grafana_dashboard=1 -o yaml | $(KUBECTL) apply -f -
	$(HELM) upgrade --install grafana grafana/grafana $(HELM_NS) -f helm/values/grafana.yaml

# The image: `docker build -t watchtower:local . && kind load docker-image watchtower:local --name $(CLUSTER)`
deploy-watchtower:
	docker build -t watchtower:local .
	$(KIND) load docker-image watchtower:local --name $(CLUSTER)
	$(HELM) upgrade --install watchtower helm/watchtower $(HELM_NS) -f $(WATCHTOWER_VALUES)

status:
	$(KUBECTL) get pods $(HELM_NS) -o wide
	@echo ""
	$(KUBECTL) get svc $(HELM_NS)

logs:
	$(KUBECTL) logs $(HELM_NS) -l app.kubernetes.io/name=watchtower -f --tail=100

teardown:
	$(KIND) delete cluster --name $(CLUSTER)

# Local-only: Watchtower writes to Tempo, Mimir and Loki only (no Sumo Logic).
enable-local-only:
	$(HELM) upgrade --install watchtower helm/watchtower $(HELM_NS) -f $(WATCHTOWER_VALUES)
	@echo "Watchtower: local LGTM only (the ConfigMap checksum annotation rolls the pods)."

# Dual-write: local LGTM + Sumo Logic; needs the sumo-credentials Secret (key: endpoint).
disable-local-only:
	@$(KUBECTL) get secret sumo-credentials $(HELM_NS) >/dev/null 2>&1 || { \
	  echo "missing secret sumo-credentials: kubectl create secret generic sumo-credentials $(HELM_NS) --from-literal=endpoint=https://..."; exit 1; }
	$(HELM) upgrade --install watchtower helm/watchtower $(HELM_NS) -f $(WATCHTOWER_VALUES) -f $(WATCHTOWER_DUALWRITE_VALUES)
	@echo "Watchtower: dual-write (local LGTM + Sumo Logic)."

render:
	@mkdir -p helm/rendered
	$(HELM) template watchtower helm/watchtower $(HELM_NS) -f $(WATCHTOWER_VALUES) > helm/rendered/watchtower.yaml
	$(HELM) template tempo grafana/tempo $(HELM_NS) -f helm/values/tempo.yaml > helm/rendered/tempo.yaml
	$(HELM) template loki grafana/loki $(HELM_NS) -f helm/values/loki.yaml > helm/rendered/loki.yaml
	$(HELM) template mimir grafana/mimir-distributed $(HELM_NS) -f helm/values/mimir.yaml > helm/rendered/mimir.yaml
	$(HELM) template grafana grafana/grafana $(HELM_NS) -f helm/values/grafana.yaml > helm/rendered/grafana.yaml

# === Test data ===============================================================================
# Sends to the local stack (compose or kind NodePorts both listen on localhost:4317/4318).
TEST_DATA_ARGS ?= --endpoint localhost:4317 --rate 10 --duration 60
test-data: test-env
	$(PY) test-data/generate.py $(TEST_DATA_ARGS)
