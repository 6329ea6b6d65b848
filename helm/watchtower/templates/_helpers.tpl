{{/* Chart name, truncated to 63 characters. */}}
{{- define "watchtower.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: the release name, unless overridden. 52 characters at most:
     the headless Service adds "-headless" and a StatefulSet's pods carry
     "<name>-<10-character hash>" as a label value, both limited to 63. */}}
{{- define "watchtower.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The port of a listening endpoint ("host:port", "[::]:port") of the Watchtower config;
     the render fails when it is not written as a number (an environment reference). */}}
{{- define "watchtower.port" -}}
{{- if not (regexMatch "^[0-9]+$" (. | toString | splitList ":" | last)) -}}
{{- fail (printf "the chart reads the pods' ports from config: write the port of %s as a number (the host may be an environment reference)" (toString .)) -}}
{{- end -}}
{{- . | toString | splitList ":" | last -}}
{{- end -}}

{{/* The container ports, read from the Watchtower config (`config:`), so the probes, the
     Services and the peers always reach what the gateway listens on; the Collector's
     defaults when the config leaves an endpoint out. */}}
{{- define "watchtower.grpcPort" -}}
{{- include "watchtower.port" (dig "receivers" "otlp" "protocols" "grpc" "endpoint" "0.0.0.0:4317" .Values.config) -}}
{{- end -}}
{{- define "watchtower.httpPort" -}}
{{- include "watchtower.port" (dig "receivers" "otlp" "protocols" "http" "endpoint" "0.0.0.0:4318" .Values.config) -}}
{{- end -}}
{{- define "watchtower.healthPort" -}}
{{- if not (has "health_check" (dig "service" "extensions" (list) .Values.config)) -}}
{{- fail "config.service.extensions must list health_check: the chart's probes and the runs API (peers) use its endpoint" -}}
{{- end -}}
{{- include "watchtower.port" (dig "extensions" "health_check" "endpoint" "0.0.0.0:13133" .Values.config) -}}
{{- end -}}
{{/* The self-metrics port: `service.telemetry.metrics.address`, or the Collector's
     `readers: [{ pull: { exporter: { prometheus: { port } } } }]` form. */}}
{{- define "watchtower.metricsPort" -}}
{{- with dig "service" "telemetry" "metrics" "readers" (list) .Values.config -}}
{{- include "watchtower.port" (printf "reader:%v" (dig "pull" "exporter" "prometheus" "port" "8888" (first .))) -}}
{{- else -}}
{{- include "watchtower.port" (dig "service" "telemetry" "metrics" "address" "0.0.0.0:8888" .Values.config) -}}
{{- end -}}
{{- end -}}

{{/* Seconds from SIGTERM to SIGKILL: the preStop sleep, then `service.shutdown_timeout`
     (the queues' drain), then 10 s for the admin listeners and the final saves. */}}
{{- define "watchtower.shutdownTimeout" -}}
{{- dig "service" "shutdown_timeout" "10s" .Values.config | toString -}}
{{- end -}}
{{- define "watchtower.terminationGracePeriodSeconds" -}}
{{- if not (regexMatch "^[0-9]+s$" (include "watchtower.shutdownTimeout" .)) -}}
{{- fail (printf "config.service.shutdown_timeout must be whole seconds (\"30s\") for the chart to size terminationGracePeriodSeconds; got %s" (include "watchtower.shutdownTimeout" .)) -}}
{{- end -}}
{{- add .Values.preStopSleepSeconds (atoi (trimSuffix "s" (include "watchtower.shutdownTimeout" .))) 10 -}}
{{- end -}}

{{- define "watchtower.selectorLabels" -}}
app.kubernetes.io/name: {{ include "watchtower.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "watchtower.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "watchtower.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The pod template shared by the Deployment (gateway) and the StatefulSet (durable
     queues); included under `template:` with nindent 4. */}}
{{- define "watchtower.podTemplate" -}}
metadata:
  annotations:
    checksum/config: {{ toYaml .Values.config | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "watchtower.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  # preStop + service.shutdown_timeout + 10 s, so a scale-down drains instead of dropping
  terminationGracePeriodSeconds: {{ include "watchtower.terminationGracePeriodSeconds" . }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    - maxSkew: {{ .maxSkew }}
      topologyKey: {{ .topologyKey }}
      whenUnsatisfiable: {{ .whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "watchtower.selectorLabels" $ | nindent 10 }}
    {{- end }}
  {{- end }}
  containers:
    - name: watchtower
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", "/etc/watchtower/config.yaml"]
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      ports:
        - name: otlp-grpc
          containerPort: {{ include "watchtower.grpcPort" . }}
          protocol: TCP
        - name: otlp-http
          containerPort: {{ include "watchtower.httpPort" . }}
          protocol: TCP
        - name: metrics
          containerPort: {{ include "watchtower.metricsPort" . }}
          protocol: TCP
        - name: health
          containerPort: {{ include "watchtower.healthPort" . }}
          protocol: TCP
      {{- if or .Values.peerDiscovery.enabled .Values.env }}
      env:
        {{- if .Values.peerDiscovery.enabled }}
        # the runs API fans out to every replica behind the headless Service (docs/replicas.md)
        - name: WATCHTOWER_RUNS_PEERS
          value: "dns+{{ include "watchtower.fullname" . }}-headless.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ include "watchtower.healthPort" . }}"
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- if .Values.preStopSleepSeconds }}
      lifecycle:
        # keep serving while endpoints and kube-proxy forget the pod; SIGTERM then drains
        # (an exec of the image's sleep: `preStop.sleep` needs Kubernetes >= 1.30)
        preStop:
          exec: { command: ["sleep", "{{ .Values.preStopSleepSeconds }}"] }
      {{- end }}
      livenessProbe:
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/watchtower
          readOnly: true
        {{- if .Values.durable.enabled }}
        - name: data
          mountPath: {{ .Values.durable.mountPath }}
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "watchtower.fullname" . }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
