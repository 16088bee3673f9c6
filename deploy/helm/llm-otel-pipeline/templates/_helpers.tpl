{{/* Names, labels and small shared pieces. */}}

{{- define "llmotel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmotel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<suffix>, at most 63 characters. */}}
{{- define "llmotel.component" -}}
{{- printf "%s-%s" (include "llmotel.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmotel.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "llmotel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-otel-pipeline
{{- end -}}

{{/* Selector labels of one component: dict "root" $ "component" "gateway-tier" */}}
{{- define "llmotel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmotel.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llmotel.componentLabels" -}}
{{ include "llmotel.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llmotel.image" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}

{{- define "llmotel.gatewayTierName" -}}{{ include "llmotel.component" (dict "root" . "name" "collector") }}{{- end -}}
{{- define "llmotel.headlessName" -}}{{ include "llmotel.component" (dict "root" . "name" "collector-headless") }}{{- end -}}
{{- define "llmotel.lbName" -}}{{ include "llmotel.component" (dict "root" . "name" "loadbalancer") }}{{- end -}}
{{- define "llmotel.appName" -}}{{ include "llmotel.component" (dict "root" . "name" "gateway") }}{{- end -}}

{{- define "llmotel.ingestSecretName" -}}
{{- if .Values.ingestAuth.existingSecret -}}
{{- .Values.ingestAuth.existingSecret -}}
{{- else -}}
{{- include "llmotel.component" (dict "root" . "name" "ingest") -}}
{{- end -}}
{{- end -}}

{{- define "llmotel.ingestSecretKey" -}}
{{- if .Values.ingestAuth.existingSecret -}}{{ .Values.ingestAuth.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{- define "llmotel.appSecretName" -}}
{{- if .Values.app.existingSecret -}}
{{- .Values.app.existingSecret -}}
{{- else -}}
{{- include "llmotel.appName" . -}}
{{- end -}}
{{- end -}}

{{/* The env var carrying the ingest token (only when ingestAuth.enabled). */}}
{{- define "llmotel.ingestTokenEnv" -}}
{{- if .Values.ingestAuth.enabled -}}
- name: OTLP_INGEST_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "llmotel.ingestSecretName" . }}
      key: {{ include "llmotel.ingestSecretKey" . }}
{{- end }}
{{- end -}}

{{/* Where applications (and the gateway app) send OTLP/gRPC: the entry tier's Service. */}}
{{- define "llmotel.ingestService" -}}
{{- if .Values.loadBalancer.enabled -}}{{ include "llmotel.lbName" . }}{{- else -}}{{ include "llmotel.gatewayTierName" . }}{{- end -}}
{{- end -}}

{{/* Default topology spread: replicas over nodes, best effort. dict "root" $ "component" "x" "custom" list */}}
{{- define "llmotel.topologySpread" -}}
{{- if .custom }}
{{- toYaml .custom }}
{{- else }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "llmotel.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "llmotel.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The Collector's standard env: listen addresses in the pod, own telemetry, pod identity. */}}
{{- define "llmotel.collectorBaseEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTLP_GRPC_ENDPOINT
  value: "0.0.0.0:4317"
- name: OTLP_HTTP_ENDPOINT
  value: "0.0.0.0:4318"
- name: HEALTH_CHECK_ENDPOINT
  value: "0.0.0.0:13133"
- name: COLLECTOR_TELEMETRY_HOST
  value: "0.0.0.0"
- name: COLLECTOR_TELEMETRY_PORT
  value: "8888"
- name: ZPAGES_ENDPOINT
  value: "127.0.0.1:55679"
- name: PPROF_ENDPOINT
  value: "127.0.0.1:1777"
- name: COLLECTOR_STORAGE_DIR
  value: /var/lib/otelcol/file_storage
{{- end -}}
