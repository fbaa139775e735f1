{{/* Names, labels and the pieces every Otter pod shares. */}}

{{- define "otter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "otter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Call with (dict "root" $ "component" "api"). */}}
{{- define "otter.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "otter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "otter.secretName" -}}
{{- required "secrets.existingSecret is required: a Secret with OTTER_KEY_PASSPHRASE, DATABASE_URL, OTTER_S3_ACCESS_KEY_ID and OTTER_S3_SECRET_ACCESS_KEY" .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The environment of every Otter process: plain settings from values, credentials from the Secret. */}}
{{- define "otter.env" -}}
- name: OTTER_ENV
  value: production
- name: OTTER_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: OTTER_DATA_DIR
  value: {{ .Values.dataDir.mountPath | quote }}
- name: OTTER_BLOB_STORE
  value: s3
{{- with .Values.config.s3.endpoint }}
- name: OTTER_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: OTTER_S3_BUCKET
  value: {{ .Values.config.s3.bucket | quote }}
- name: OTTER_S3_REGION
  value: {{ .Values.config.s3.region | quote }}
- name: OTTER_S3_FORCE_PATH_STYLE
  value: {{ .Values.config.s3.forcePathStyle | quote }}
- name: REDIS_URL
{{- if .Values.secrets.keys.redisUrl }}
  valueFrom:
    secretKeyRef:
      name: {{ include "otter.secretName" . }}
      key: {{ .Values.secrets.keys.redisUrl }}
{{- else }}
  value: {{ .Values.config.redisUrl | quote }}
{{- end }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "otter.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
- name: OTTER_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "otter.secretName" . }}
      key: {{ .Values.secrets.keys.s3AccessKeyId }}
- name: OTTER_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "otter.secretName" . }}
      key: {{ .Values.secrets.keys.s3SecretAccessKey }}
- name: OTTER_KEY_PASSPHRASE
  valueFrom:
    secretKeyRef:
      name: {{ include "otter.secretName" . }}
      key: {{ .Values.secrets.keys.keyPassphrase }}
{{- if .Values.secrets.keys.metricsToken }}
- name: OTTER_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "otter.secretName" . }}
      key: {{ .Values.secrets.keys.metricsToken }}
{{- end }}
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* OTTER_DATA_DIR (shared by every pod) and a writable /tmp under a read-only root filesystem. */}}
{{- define "otter.volumes" -}}
- name: data
{{- if .Values.dataDir.existingSecret }}
  secret:
    secretName: {{ .Values.dataDir.existingSecret }}
    defaultMode: 0440
{{- else if .Values.dataDir.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.dataDir.persistence.existingClaim | default (printf "%s-data" (include "otter.fullname" .)) }}
{{- else }}
  # Not shared and lost with the pod: for trying the chart out only.
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "otter.volumeMounts" -}}
- name: data
  mountPath: {{ .Values.dataDir.mountPath }}
  readOnly: {{ not (empty .Values.dataDir.existingSecret) }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod-level settings shared by the three Deployments. */}}
{{- define "otter.podSettings" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  {{- include "otter.volumes" . | nindent 2 }}
{{- end -}}

{{/* A worker's metrics port (scheduler, delta-worker): env, container port and liveness probe. */}}
{{- define "otter.workerMetricsEnv" -}}
{{- if .Values.metrics.enabled }}
- name: OTTER_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: OTTER_METRICS_HOST
  value: "0.0.0.0"
{{- end }}
{{- end -}}

{{- define "otter.workerMetricsPort" -}}
{{- if .Values.metrics.enabled }}
ports:
  - name: metrics
    containerPort: {{ .Values.metrics.port }}
    protocol: TCP
# The process answers on its metrics port (a TCP check: a scrape may need OTTER_METRICS_TOKEN).
livenessProbe:
  tcpSocket:
    port: metrics
  initialDelaySeconds: 30
  periodSeconds: 15
  failureThreshold: 4
{{- end }}
{{- end -}}

{{/* Call with (dict "root" $ "port" <port> "scheme" <http|https>). */}}
{{- define "otter.scrapeAnnotations" -}}
{{- if .root.Values.metrics.enabled }}
annotations:
  prometheus.io/scrape: "true"
  prometheus.io/path: /metrics
  prometheus.io/port: {{ .port | quote }}
  prometheus.io/scheme: {{ .scheme }}
{{- end }}
{{- end -}}
