{{/* Names and labels shared by every template. */}}

{{- define "mirrors.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mirrors.fullname" -}}
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

{{/* The Service Metacontroller calls. */}}
{{- define "mirrors.hooksService" -}}
{{- printf "%s-hooks" (include "mirrors.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mirrors.serviceAccountName" -}}
{{- default (include "mirrors.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Namespace of the state Secrets and the Lease. */}}
{{- define "mirrors.controllerNamespace" -}}
{{- default .Release.Namespace .Values.controllerNamespace -}}
{{- end -}}

{{- define "mirrors.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mirrors.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mirrors.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mirrors.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mirrors
{{- end -}}

{{- define "mirrors.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The hooks' base URL as Metacontroller reaches it. */}}
{{- define "mirrors.hooksURL" -}}
{{- printf "http://%s.%s.svc:%d" (include "mirrors.hooksService" .) .Release.Namespace (int .Values.service.port) -}}
{{- end -}}

{{/* The restricted Pod Security Standard, per container. */}}
{{- define "mirrors.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
