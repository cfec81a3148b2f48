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

{{/* Rules on the resources the operator manages inside a namespace: exactly what the code
calls (operator/src/rbac.rs), checked by the cluster tier. */}}
{{- define "convene.namespacedRules" -}}
- apiGroups: ["convene.dev"]
  resources: [shards, turnpools, recorderpools]
  verbs: [get, list, watch]
# patch: the BridgePool finalizer that removes the pool's cluster-scoped binding.
- apiGroups: ["convene.dev"]
  resources: [bridgepools]
  verbs: [get, list, watch, patch]
- apiGroups: ["convene.dev"]
  resources: [shards/status, bridgepools/status, turnpools/status, recorderpools/status]
  verbs: [patch]
# Children carry owner references that block their owner's deletion.
- apiGroups: ["convene.dev"]
  resources: [shards/finalizers, bridgepools/finalizers, turnpools/finalizers, recorderpools/finalizers]
  verbs: [update]
- apiGroups: ["apps"]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [create, patch]
# Generated secrets are created once and never updated. list/watch: referenced Secrets are
# watched (metadata only) so a Secret created later is picked up within seconds.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create]
# patch: a bridge pod is annotated when its drain starts, so the deadline survives restarts;
# delete: a drained bridge on an old template is replaced during a rolling update.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch, delete]
- apiGroups: ["networking.k8s.io"]
  resources: [ingresses]
  verbs: [list, watch, create, patch, delete]
- apiGroups: ["networking.k8s.io"]
  resources: [networkpolicies]
  verbs: [create, patch]
- apiGroups: ["policy"]
  resources: [poddisruptionbudgets]
  verbs: [create, patch]
- apiGroups: ["events.k8s.io"]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
