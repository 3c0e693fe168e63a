{{/* Names and labels shared by every template. */}}

{{- define "beacon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "beacon.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "beacon.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "beacon.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "beacon.controller.fullname" -}}
{{- printf "%s-controller" (include "beacon.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "beacon.speaker.fullname" -}}
{{- printf "%s-speaker" (include "beacon.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "beacon.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (include "beacon.controller.fullname" .) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "beacon.speaker.serviceAccountName" -}}
{{- if .Values.speaker.serviceAccount.create -}}
{{- default (include "beacon.speaker.fullname" .) .Values.speaker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.speaker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "beacon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "beacon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: beacon
{{- end -}}

{{- define "beacon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "beacon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "beacon.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The speaker runs when it has something to do: announce or forward. */}}
{{- define "beacon.speaker.enabled" -}}
{{- if and .Values.speaker.enabled (or .Values.l2.enabled .Values.bgp.enabled (ne .Values.dataplane "off")) -}}true{{- end -}}
{{- end -}}

{{- define "beacon.memberKeySecret" -}}
{{- default (printf "%s-memberkey" (include "beacon.speaker.fullname" .)) .Values.speaker.memberKey.existingSecret -}}
{{- end -}}

{{/* host:port for a daemon endpoint from the shared bind address. */}}
{{- define "beacon.addr" -}}
{{- $bind := index . 0 -}}{{- $port := index . 1 -}}
{{- if contains ":" $bind -}}[{{ $bind }}]:{{ $port }}{{- else -}}{{ $bind }}:{{ $port }}{{- end -}}
{{- end -}}

{{/* dataplane: full replaces kube-proxy; next to it, both would translate
ClusterIP and NodePort traffic. lookup sees the cluster only in helm
install/upgrade (and --dry-run=server), so helm template renders as before. */}}
{{- define "beacon.checkDataplane" -}}
{{- if and (eq .Values.dataplane "full") .Values.checkKubeProxy -}}
{{- if lookup "apps/v1" "DaemonSet" "kube-system" "kube-proxy" -}}
{{- fail "dataplane: full replaces kube-proxy, but the DaemonSet kube-system/kube-proxy exists, so both would translate ClusterIP and NodePort traffic. Remove kube-proxy first (docs/install.md, Coexisting with kube-proxy), or use dataplane: external; set checkKubeProxy: false only if that DaemonSet runs on no node." -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The API server's address for both daemons, instead of the kubernetes
Service's ClusterIP that the kubelet puts in the same variables (a
container's own env wins). dig: helm upgrade --reuse-values from a release
without these values has no .Values.kubernetes. */}}
{{- define "beacon.apiServerEnv" -}}
{{- $api := .Values.kubernetes | default dict -}}
{{- with dig "apiServer" "host" "" $api -}}
- name: KUBERNETES_SERVICE_HOST
  value: {{ . | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ dig "apiServer" "port" 6443 $api | quote }}
{{- end -}}
{{- end -}}
