{{- define "convene.fullname" -}}
{{- if contains "convene" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-convene" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "convene.labels" -}}
app.kubernetes.io/name: convene-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "convene.selectorLabels" -}}
app.kubernetes.io/name: convene-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "convene.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "convene.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules on the resources the operator manages inside a namespace. */}}
{{- define "convene.namespacedRules" -}}
- apiGroups: ["convene.dev"]
  resources: [shards, bridgepools, turnpools, recorderpools]
  verbs: [get, list, watch, patch, update]
- apiGroups: ["convene.dev"]
  resources: [shards/status, bridgepools/status, turnpools/status, recorderpools/status]
  verbs: [get, patch, update]
- apiGroups: ["convene.dev"]
  resources: [bridgepools/finalizers]
  verbs: [update]
- apiGroups: ["apps"]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [get, list, watch, create, patch, delete]
# Generated secrets are created once and only checked afterwards: no list, watch or update.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
# patch: a bridge pod is annotated when its drain starts, so the deadline survives restarts.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
- apiGroups: ["networking.k8s.io"]
  resources: [ingresses, networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: ["policy"]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: ["events.k8s.io"]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
