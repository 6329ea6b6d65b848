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

{{/* A regular expression (Go RE2, matched case-insensitively against the whole host) for
     the hosts that are loopback; one alternative per line. */}}
{{- define "watchtower.loopbackHost" -}}
{{- /* localhost and any name under it (RFC 6761 section 6.3), and Debian's /etc/hosts names
     of ::1; each may end in a dot (a FQDN) */ -}}
(([a-z0-9_-]+\.)*localhost|ip6-localhost|ip6-loopback)\.?
{{- /* IPv4 127.0.0.0/8, in every form the C library's inet_aton reads as a host: four parts
     (127.0.0.1) or fewer (127.1, 127.0.1), the first part decimal, octal (0177) or hex
     (0x7f), the others decimal, octal or hex numbers */ -}}
|(127|0+177|0x0*7f)(\.(0x[0-9a-f]+|[0-9]+)){0,3}
{{- /* IPv6, brackets optional: ::1 however its zeros are written (::1, 0:0:0:0:0:0:0:1),
     or 127.0.0.0/8 mapped into IPv6 (::ffff:127.0.0.1, or in hex ::ffff:7f00:1); then an
     optional zone (%lo) */ -}}
|\[?((0*:){2,7}0*1|(0*:){2,5}ffff:(127(\.[0-9]+){3}|7f[0-9a-f]{2}:[0-9a-f]{1,4}))(%[^\]]*)?\]?
{{- end -}}

{{/* host:port, given as `list <host> <port>`; an IPv6 host is bracketed ([::1]:8888), as
     Watchtower writes a pull reader's endpoint. */}}
{{- define "watchtower.hostPort" -}}
{{- if and (contains ":" (toString (first .))) (not (hasPrefix "[" (toString (first .)))) -}}
[{{ first . }}]:{{ last . }}
{{- else -}}
{{ first . }}:{{ last . }}
{{- end -}}
{{- end -}}

{{/* The port of a listening endpoint of the Watchtower config that the pods expose, given as
     `dict "key" <its path under config:> "endpoint" <"host:port"> "reachedBy" <who dials it>`.
     The render fails when the port is not written as a number (an environment reference), or
     when the host is a loopback address (watchtower.loopbackHost: 127.0.0.0/8, localhost,
     ::1, IPv4-mapped 127.0.0.0/8): the Services, the kubelet's probes and the peers reach a
     pod at its IP, never at its loopback. */}}
{{- define "watchtower.port" -}}
{{- if not (regexMatch "^[0-9]+$" (.endpoint | toString | splitList ":" | last)) -}}
{{- fail (printf "the chart reads the pods' ports from config: write the port of %s (%s) as a number (the host may be an environment reference)" .key (toString .endpoint)) -}}
{{- end -}}
{{- if regexMatch (printf "(?i)^(%s):[0-9]+$" (include "watchtower.loopbackHost" .)) (toString .endpoint) -}}
{{- fail (printf "%s is %s, a loopback address that %s cannot reach at the pod's IP: bind 0.0.0.0:%s (or the pod's IP)" .key (toString .endpoint) .reachedBy (.endpoint | toString | splitList ":" | last)) -}}
{{- end -}}
{{- .endpoint | toString | splitList ":" | last -}}
{{- end -}}

{{/* The container ports, read from the Watchtower config (`config:`), so the probes, the
     Services and the peers always reach what the gateway listens on; the Collector's
     defaults when the config leaves an endpoint out. */}}
{{- define "watchtower.grpcPort" -}}
{{- include "watchtower.port" (dict "key" "config.receivers.otlp.protocols.grpc.endpoint" "endpoint" (dig "receivers" "otlp" "protocols" "grpc" "endpoint" "0.0.0.0:4317" .Values.config) "reachedBy" "the Service (otlp-grpc)") -}}
{{- end -}}
{{- define "watchtower.httpPort" -}}
{{- include "watchtower.port" (dict "key" "config.receivers.otlp.protocols.http.endpoint" "endpoint" (dig "receivers" "otlp" "protocols" "http" "endpoint" "0.0.0.0:4318" .Values.config) "reachedBy" "the Service (otlp-http)") -}}
{{- end -}}
{{- define "watchtower.healthPort" -}}
{{- if not (has "health_check" (dig "service" "extensions" (list) .Values.config)) -}}
{{- fail "config.service.extensions must list health_check: the chart's probes and the runs API (peers) use its endpoint" -}}
{{- end -}}
{{- include "watchtower.port" (dict "key" "config.extensions.health_check.endpoint" "endpoint" (dig "extensions" "health_check" "endpoint" "0.0.0.0:13133" .Values.config) "reachedBy" "the kubelet's probes, the Services (health) and the peers (runs API)") -}}
{{- end -}}
{{/* Why Watchtower serves no self-metrics, as "<key> is <value>"; empty when it does. Off:
     `level: none` (any case), or `address: ""` with no readers (an empty readers list is no
     reader: the address applies). */}}
{{- define "watchtower.metricsOff" -}}
{{- if eq (dig "service" "telemetry" "metrics" "level" "normal" .Values.config | toString | lower) "none" -}}
config.service.telemetry.metrics.level is {{ dig "service" "telemetry" "metrics" "level" "" .Values.config | toString | quote }}
{{- else if and (not (dig "service" "telemetry" "metrics" "readers" (list) .Values.config)) (eq (dig "service" "telemetry" "metrics" "address" "0.0.0.0:8888" .Values.config | toString) "") -}}
config.service.telemetry.metrics.address is ""
{{- end -}}
{{- end -}}

{{/* The self-metrics port: `service.telemetry.metrics.address`, or the Collector's
     `readers: [{ pull: { exporter: { prometheus: { host, port } } } }]` form (its host
     defaults to localhost, as in the Collector); empty when the endpoint is off
     (watchtower.metricsOff): then no container port, no Service port, no ServiceMonitor. */}}
{{- define "watchtower.metricsPort" -}}
{{- if not (include "watchtower.metricsOff" .) -}}
{{- with dig "service" "telemetry" "metrics" "readers" (list) .Values.config -}}
{{- include "watchtower.port" (dict "key" "config.service.telemetry.metrics.readers[0].pull.exporter.prometheus host:port" "endpoint" (include "watchtower.hostPort" (list (dig "pull" "exporter" "prometheus" "host" "localhost" (first .)) (dig "pull" "exporter" "prometheus" "port" "8888" (first .)))) "reachedBy" "the Service (metrics) and the ServiceMonitor") -}}
{{- else -}}
{{- include "watchtower.port" (dict "key" "config.service.telemetry.metrics.address" "endpoint" (dig "service" "telemetry" "metrics" "address" "0.0.0.0:8888" .Values.config) "reachedBy" "the Service (metrics) and the ServiceMonitor") -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Seconds from SIGTERM to SIGKILL: the preStop sleep, then `service.shutdown_timeout`
     (the queues' drain), then 10 s for handing the run parts to the peers (one
     `extensions.runs.peer_timeout`, 2 s by default), the admin listeners and the final
     saves. */}}
{{- define "watchtower.shutdownTimeout" -}}
{{- dig "service" "shutdown_timeout" "10s" .Values.config | toString -}}
{{- end -}}
{{- define "watchtower.terminationGracePeriodSeconds" -}}
{{- if not (regexMatch "^[0-9]+s$" (include "watchtower.shutdownTimeout" .)) -}}
{{- fail (printf "config.service.shutdown_timeout must be whole seconds (\"30s\") for the chart to size terminationGracePeriodSeconds; got %s" (include "watchtower.shutdownTimeout" .)) -}}
{{- end -}}
{{- add .Values.preStopSleepSeconds (atoi (trimSuffix "s" (include "watchtower.shutdownTimeout" .))) 10 -}}
{{- end -}}

{{/* Label values are quoted: Kubernetes refuses a label value that is not a string, and a
     release name such as "1.10" would otherwise be read as a number. */}}
{{- define "watchtower.selectorLabels" -}}
app.kubernetes.io/name: {{ include "watchtower.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{/* A map of labels (given as the map), one `"key": "value"` line each (after a newline:
     `| trim` it): every value is rendered as a string, its text as the values file's YAML gave
     it (Kubernetes refuses other label values; an unquoted 1.10 is already the number 1.1,
     true the bool true). */}}
{{- define "watchtower.labelMap" -}}
{{- range $k, $v := . }}
{{ $k | quote }}: {{ toString $v | quote }}
{{- end }}
{{- end -}}

{{/* The pods' labels: the selector labels and podLabels. podLabels may repeat a selector
     label with the same value; another value fails the render, since the workload's selector
     (Kubernetes refuses a template that does not match it), the Services, the
     PodDisruptionBudget and the spread constraints select the pods by these labels. */}}
{{- define "watchtower.podLabels" -}}
{{- $selector := include "watchtower.selectorLabels" . | fromYaml }}
{{- range $k, $v := .Values.podLabels }}
{{- if and (hasKey $selector $k) (ne (toString $v) (toString (index $selector $k))) }}
{{- fail (printf "podLabels[%s] is %s, but the chart selects its pods by %s: %s (the Deployment/StatefulSet selector, the Services, the PodDisruptionBudget): remove it from podLabels (nameOverride and the release name set it)" ($k | quote) (toString $v | quote) $k (index $selector $k | toString | quote)) }}
{{- end }}
{{- end }}
{{- include "watchtower.labelMap" (merge $selector (default (dict) .Values.podLabels)) | trim }}
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
    {{- include "watchtower.labelMap" . | trim | nindent 4 }}
    {{- end }}
  labels:
    {{- include "watchtower.podLabels" . | nindent 4 }}
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
        {{- with include "watchtower.metricsPort" . }}
        - name: metrics
          containerPort: {{ . }}
          protocol: TCP
        {{- end }}
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
