{{- /* _helpers.tpl: names, standard labels, the image reference and the value checks shared by the api-tokens templates. */ -}}

{{/* The chart name, or nameOverride. */}}
{{- define "api-tokens.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, else RELEASE-NAME unless the
release name already contains the chart name. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "api-tokens.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "api-tokens.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels every resource carries. */}}
{{- define "api-tokens.labels" -}}
helm.sh/chart: {{ include "api-tokens.chart" . }}
{{ include "api-tokens.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: api-tokens
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the release's pods (never change them: Deployment selectors are immutable). */}}
{{- define "api-tokens.selectorLabels" -}}
app.kubernetes.io/name: {{ include "api-tokens.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "api-tokens.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "api-tokens.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "api-tokens.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The default database URL: an SQLite file on the /data volume. */}}
{{- define "api-tokens.defaultSqliteUrl" -}}
sqlite:///data/api-tokens.db?mode=rwc
{{- end }}

{{/* The URL the chart-created Secret holds (only meaningful when existingSecret is empty). */}}
{{- define "api-tokens.databaseUrl" -}}
{{- if .Values.database.url }}
{{- .Values.database.url }}
{{- else if eq .Values.database.driver "sqlite" }}
{{- include "api-tokens.defaultSqliteUrl" . }}
{{- end }}
{{- end }}

{{/* The Secret and key the pods read API_TOKENS_DATABASE_URL from. */}}
{{- define "api-tokens.databaseSecretName" -}}
{{- default (printf "%s-database" (include "api-tokens.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "api-tokens.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else -}}
database-url
{{- end }}
{{- end }}

{{/* True ("true") when more than one pod may run at once: several replicas or autoscaling. */}}
{{- define "api-tokens.multiReplica" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
The checks that a JSON schema cannot express (cross-field rules). Every template includes
this, so `helm template` and `helm install` fail early with one clear message.
*/}}
{{- define "api-tokens.validate" -}}
{{- $db := .Values.database }}
{{- if and $db.url $db.existingSecret }}
{{- fail "database: set either database.url (the chart creates the Secret) or database.existingSecret, not both" }}
{{- end }}
{{- if and (eq $db.driver "postgres") (not $db.url) (not $db.existingSecret) }}
{{- fail "database.driver=postgres needs database.url (postgres://USER:PASSWORD@HOST:5432/DB) or database.existingSecret" }}
{{- end }}
{{- if $db.url }}
{{- if and (eq $db.driver "sqlite") (not (hasPrefix "sqlite:" $db.url)) }}
{{- fail "database.url is not an SQLite URL (sqlite:...) but database.driver is sqlite: for PostgreSQL set database.driver=postgres" }}
{{- end }}
{{- if and (eq $db.driver "postgres") (not (or (hasPrefix "postgres://" $db.url) (hasPrefix "postgresql://" $db.url))) }}
{{- fail "database.driver is postgres but database.url does not start with postgres:// or postgresql://" }}
{{- end }}
{{- end }}
{{- if and (include "api-tokens.multiReplica" .) (ne $db.driver "postgres") }}
{{- fail (printf "replicaCount=%v / autoscaling.enabled=%v need PostgreSQL: SQLite is one file on one pod's volume and serves a single replica only. Set database.driver=postgres with database.url or database.existingSecret, or run one replica without autoscaling" .Values.replicaCount .Values.autoscaling.enabled) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.targetCPUUtilizationPercentage) (not .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling.enabled needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "podDisruptionBudget.enabled needs minAvailable or maxUnavailable" }}
{{- end }}
{{- $needed := add (int .Values.preStopSleepSeconds) (int .Values.config.drainTimeoutSeconds) }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + config.drainTimeoutSeconds (%v), or the kubelet kills the pod mid-drain" .Values.terminationGracePeriodSeconds $needed) }}
{{- end }}
{{- if .Values.migrations.job.enabled }}
{{- if ne $db.driver "postgres" }}
{{- fail "migrations.job.enabled needs database.driver=postgres: with SQLite the single pod migrates its own file at start" }}
{{- end }}
{{- if not $db.existingSecret }}
{{- fail "migrations.job.enabled needs database.existingSecret: the hook Job runs before the chart creates its own Secret, so the URL must already be in a Secret you manage" }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if eq (int .Values.metrics.port) 50051 }}
{{- fail "metrics.port must differ from the gRPC port 50051" }}
{{- end }}
{{- end }}
