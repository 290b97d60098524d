{{/* Names, labels and the image, shared by every template. */}}

{{- define "kps.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, or just the release name when it already contains the chart name. */}}
{{- define "kps.fullname" -}}
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

{{/* Component names stay under 63 characters with their suffixes. */}}
{{- define "kps.agent.fullname" -}}
{{- printf "%s-agent" (include "kps.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}

{{- define "kps.operator.fullname" -}}
{{- printf "%s-operator" (include "kps.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{- define "kps.operator.tlsSecret" -}}
{{- .Values.operator.tls.existingSecret | default (printf "%s-tls" (include "kps.operator.fullname" .)) -}}
{{- end -}}

{{- define "kps.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kps.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-portsentry
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: pass (list $ "agent") or (list $ "operator"). */}}
{{- define "kps.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "kps.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kps.componentLabels" -}}
{{ include "kps.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kps.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The address agents send reports to: the operator Service's cluster DNS name. */}}
{{- define "kps.operator.url" -}}
{{- printf "https://%s.%s.svc:%d" (include "kps.operator.fullname" .) .Release.Namespace (int .Values.operator.reportsPort) -}}
{{- end -}}

{{/*
The report endpoint's CA and serving certificate, base64 as in Secret data. An existing
Secret is kept (lookup), so upgrades never rotate the certificate under running agents;
otherwise a CA and a certificate for the operator Service's names are made. Computed once
per render and remembered, so the Secret and the pods' checksum annotations agree.
*/}}
{{- define "kps.operator.tlsData" -}}
{{- if not (hasKey . "kpsTlsData") -}}
{{- $name := include "kps.operator.tlsSecret" . -}}
{{- $data := dict -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- if and $existing $existing.data -}}
{{- if and (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") (hasKey $existing.data "ca.crt") -}}
{{- $data = dict "tls.crt" (index $existing.data "tls.crt") "tls.key" (index $existing.data "tls.key") "ca.crt" (index $existing.data "ca.crt") -}}
{{- end -}}
{{- end -}}
{{- if not $data -}}
{{- $svc := include "kps.operator.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $days := int .Values.operator.tls.validityDays -}}
{{- $ca := genCA (printf "%s-ca" $svc) $days -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc $ns) nil $names $days $ca -}}
{{- $data = dict "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc) -}}
{{- end -}}
{{- $_ := set . "kpsTlsData" $data -}}
{{- end -}}
{{- toJson .kpsTlsData -}}
{{- end -}}

{{/* Pod annotation that restarts the pods when the generated CA changes (a Secret of the
user's or of cert-manager is reloaded live instead). */}}
{{- define "kps.tlsChecksum" -}}
{{- if not (or .Values.operator.tls.existingSecret .Values.operator.tls.certManager.enabled) -}}
checksum/report-ca: {{ index (include "kps.operator.tlsData" . | fromJson) "ca.crt" | sha256sum }}
{{- end -}}
{{- end -}}

{{/* --allowed-commands for agent and operator, when the chart's admin enabled commands. */}}
{{- define "kps.allowedCommandsArg" -}}
{{- if and .Values.agent.commands.enabled .Values.agent.commands.allowed -}}
- --allowed-commands={{ join "," .Values.agent.commands.allowed }}
{{- end -}}
{{- end -}}

{{/* The hosts.deny files policies may have the agents write, for agent and operator alike. */}}
{{- define "kps.allowedHostsDenyArg" -}}
{{- if and .Values.agent.hostsDeny.enabled .Values.agent.hostsDeny.allowed -}}
- --allowed-hosts-deny={{ join "," .Values.agent.hostsDeny.allowed }}
{{- end -}}
{{- end -}}
