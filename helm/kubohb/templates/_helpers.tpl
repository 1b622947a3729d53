{{/* Names and labels are derived here only; templates never paste them together themselves. */}}

{{- define "kubohb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, trimmed to 52 characters so that suffixes (-controller, -store,
-trial, -test) keep object names within 63. */}}
{{- define "kubohb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubohb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubohb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubohb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubohb.labels" -}}
helm.sh/chart: {{ include "kubohb.chart" . }}
{{ include "kubohb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubohb
{{- with .Values.sweep.name }}
kubohb.io/sweep: {{ . | quote }}
{{- end }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kubohb.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubohb.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: set the name of an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubohb.trialServiceAccountName" -}}
{{- if .Values.trialServiceAccount.create }}
{{- default (printf "%s-trial" (include "kubohb.fullname" .)) .Values.trialServiceAccount.name }}
{{- else }}
{{- .Values.trialServiceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or "" when pods use the platform's
identity. */}}
{{- define "kubohb.storeSecretName" -}}
{{- if .Values.store.existingSecret }}
{{- .Values.store.existingSecret }}
{{- else if and .Values.store.credentials.accessKeyId .Values.store.credentials.secretAccessKey }}
{{- printf "%s-store" (include "kubohb.fullname" .) }}
{{- end }}
{{- end }}

{{- define "kubohb.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* What the chart refuses before rendering anything (included by configmap.yaml): an upgrade,
values left empty that no default could fill, and value combinations that cannot run. Every
message names the value and says what to do. */}}
{{- define "kubohb.checks" -}}
{{- if not (has .Values.mode (list "sweep" "namespace")) }}
{{- fail (printf "mode: %q is not one of sweep (a sweep: its controller Job and ConfigMap), namespace (what `kubohb submit` needs once per namespace: accounts, Role, store Secret)" .Values.mode) }}
{{- end }}
{{- if and .Release.IsUpgrade (eq .Values.mode "sweep") }}
{{- fail (printf "helm upgrade is not supported: a release runs one sweep, and its controller Job cannot change in place. The sweep's state is in the store: `helm uninstall %s -n %s`, then `helm install %s <chart> -n %s` with the changed values and the same sweep.name (%s) resumes it from state.json. Stop caps, parallelism, timeouts and API tuning may change; what a trial's loss means (name, space, budget, bohb, trainer, data, and for a seconds budget the hardware) must stay the same (docs/sweep-spec.md, \"Resume\"; docs/kubernetes.md, \"Changing a running sweep\")" .Release.Name .Release.Namespace .Release.Name .Release.Namespace (.Values.sweep.name | default "unset")) }}
{{- end }}
{{- $trainer := default dict .Values.sweep.trainer }}
{{- $missing := list }}
{{- if not .Values.image.repository }}
{{- $missing = append $missing "image.repository: the controller image you pushed (`make images`; none is published), e.g. registry.example.com/ml/kubohb-controller" }}
{{- end }}
{{- if not .Values.store.url }}
{{- $missing = append $missing "store.url: the store root, e.g. s3://my-bucket/kubohb" }}
{{- end }}
{{- if and (eq .Values.mode "sweep") (not .Values.sweep.name) }}
{{- $missing = append $missing "sweep.name: a DNS label naming this sweep, e.g. cifar10-bohb (a name already used in the store resumes that sweep)" }}
{{- end }}
{{- if and (eq .Values.mode "sweep") (not $trainer.image) }}
{{- $missing = append $missing "sweep.trainer.image: the trainer image you pushed (`make images`; none is published), e.g. registry.example.com/ml/kubohb-trainer:0.1.0" }}
{{- end }}
{{- if and (eq .Values.mode "sweep") (not $trainer.dataset) }}
{{- $missing = append $missing "sweep.trainer.dataset: fashion_mnist or cifar10 (with sweep.trainer.data.location or data.download: true), or synthetic" }}
{{- end }}
{{- with $missing }}
{{- fail (printf "required values are not set (give them in a values file or with --set; docs/kubernetes.md):\n  %s" (join "\n  " .)) }}
{{- end }}
{{- $data := default dict $trainer.data }}
{{- if and $trainer.dataset (ne $trainer.dataset "synthetic") (not $data.location) (not $data.download) }}
{{- fail (printf "sweep.trainer.data: the trainer image holds no data set; set sweep.trainer.data.location (an s3:// prefix with %s in torchvision's format, or a path in your own trainer image) or sweep.trainer.data.download: true (trial pods then need internet access)" $trainer.dataset) }}
{{- end }}
{{- $space := default dict .Values.sweep.space }}
{{- if and $space.builtin $space.parameters }}
{{- fail "sweep.space: give either builtin or parameters, not both (a values file and --set may each have given one)" }}
{{- end }}
{{- end }}

{{/* The sweep spec of the ConfigMap: the user's `sweep` plus the store and the Kubernetes backend
derived from the chart's values. Values the chart must own (namespace, credentials Secret) win
over anything given in `kubernetes`. */}}
{{- define "kubohb.sweepSpec" -}}
{{- range $field := list "store" "backend" }}
{{- if hasKey $.Values.sweep $field }}
{{- fail (printf "sweep.%s: set by the chart; use the chart's `store` values (url, endpointUrl, region, existingSecret) and `kubernetes` (backend options) instead" $field) }}
{{- end }}
{{- end }}
{{- range $field := list "namespace" "credentials_secret" }}
{{- if hasKey (default dict $.Values.kubernetes) $field }}
{{- fail (printf "kubernetes.%s: set by the chart (the release namespace and the store Secret); remove it" $field) }}
{{- end }}
{{- end }}
{{- $store := include "kubohb.storeSection" . | fromYaml }}
{{- $k8s := include "kubohb.kubernetesSection" . | fromYaml }}
{{- $spec := deepCopy .Values.sweep }}
{{- /* Map defaults are filled here, only when the user gave none: values.yaml holds none
because Helm merges a user's map into the default map key by key. */}}
{{- if not $spec.space }}{{- $_ := set $spec "space" (dict "builtin" "zela2018") }}{{- end }}
{{- if not $spec.stop }}{{- $_ := set $spec "stop" (dict "max_iterations" 4) }}{{- end }}
{{- $_ := set $spec "store" $store }}
{{- $_ := set $spec "backend" (dict "type" "kubernetes" "kubernetes" $k8s) }}
{{- toYaml $spec }}
{{- end }}

{{/* The sweep spec's `store` section, from the chart's store values. */}}
{{- define "kubohb.storeSection" -}}
{{- $secret := include "kubohb.storeSecretName" . }}
{{- $store := dict "url" .Values.store.url }}
{{- with .Values.store.endpointUrl }}{{- $_ := set $store "endpoint_url" . }}{{- end }}
{{- with .Values.store.region }}{{- $_ := set $store "region" . }}{{- end }}
{{- if $secret }}
{{- $_ := set $store "credentials" (dict "env" true "secret" $secret) }}
{{- else }}
{{- $_ := set $store "credentials" (dict "env" false) }}
{{- end }}
{{- toYaml $store }}
{{- end }}

{{/* The sweep spec's `backend.kubernetes` section: defaults (trial account, pull secrets), the
chart's `kubernetes` values over them, and what the chart owns (namespace, store Secret) last. */}}
{{- define "kubohb.kubernetesSection" -}}
{{- $secret := include "kubohb.storeSecretName" . }}
{{- $defaults := dict }}
{{- with include "kubohb.trialServiceAccountName" . }}{{- $_ := set $defaults "service_account_name" . }}{{- end }}
{{- with .Values.imagePullSecrets }}{{- $_ := set $defaults "image_pull_secrets" . }}{{- end }}
{{- $owned := dict "namespace" .Release.Namespace }}
{{- if $secret }}{{- $_ := set $owned "credentials_secret" $secret }}{{- end }}
{{- toYaml (mergeOverwrite $defaults (deepCopy (default dict .Values.kubernetes)) $owned) }}
{{- end }}

{{/* Pod and container security contexts: the "restricted" Pod Security Standard. */}}
{{- define "kubohb.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kubohb.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end }}
