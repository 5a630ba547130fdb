package validate

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

var overlays = []string{"dev", "prod"}

// object is one object of a built overlay: its JSON and, for the built-in kinds, its typed
// form.
type object struct {
	APIVersion, Kind, Name, Namespace string
	JSON                              []byte
	Typed                             runtime.Object
}

func (o object) id() string { return o.Kind + "/" + o.Name }

// buildOverlay runs kustomize (krusty, as `kustomize build --load-restrictor
// LoadRestrictionsNone`) on deploy/k8s/overlays/<name>.
func buildOverlay(t *testing.T, dir string) ([]object, error) {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = kustypes.LoadRestrictionsNone
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	var out []object
	for _, r := range m.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		out = append(out, object{APIVersion: r.GetApiVersion(), Kind: r.GetKind(), Name: r.GetName(), Namespace: r.GetNamespace(), JSON: data})
	}
	return out, nil
}

var builtin = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme, autoscalingv2.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictDecode decodes JSON into v, refusing unknown and duplicate fields, as an API server
// with fieldValidation=Strict does.
func strictDecode(data []byte, v any) error {
	strictErrs, err := kjson.UnmarshalStrict(data, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		var msgs []string
		for _, e := range strictErrs {
			msgs = append(msgs, e.Error())
		}
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

// scaledObject mirrors KEDA's keda.sh/v1alpha1 ScaledObject (KEDA 2.x, the fields of its
// documented spec). No KEDA CRD is in ../shared/crds: this typed copy is what a typo meets.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion             string `json:"apiVersion,omitempty"`
			Kind                   string `json:"kind,omitempty"`
			Name                   string `json:"name"`
			EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval  *int32 `json:"pollingInterval,omitempty"`
		InitialCooldown  *int32 `json:"initialCooldownPeriod,omitempty"`
		CooldownPeriod   *int32 `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount *int32 `json:"idleReplicaCount,omitempty"`
		MinReplicaCount  *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount  *int32 `json:"maxReplicaCount,omitempty"`
		Fallback         *struct {
			FailureThreshold int32  `json:"failureThreshold"`
			Replicas         int32  `json:"replicas"`
			Behavior         string `json:"behavior,omitempty"`
		} `json:"fallback,omitempty"`
		Advanced *struct {
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
			HorizontalPodAutoscalerConfig *struct {
				Name     string                                         `json:"name,omitempty"`
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
			MetricType        string            `json:"metricType,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// decodeAll types every object: built-in kinds strictly into k8s.io/api, KEDA's into
// scaledObject, the operators' against their CRD schemas (and their embedded pod, volume
// claim and service specs strictly into k8s.io/api).
func decodeAll(t *testing.T, objs []object) []string {
	t.Helper()
	crds := loadCRDs(t)
	var problems []string
	for i := range objs {
		o := &objs[i]
		gv, err := schema.ParseGroupVersion(o.APIVersion)
		if err != nil {
			problems = append(problems, o.id()+": "+err.Error())
			continue
		}
		gvk := gv.WithKind(o.Kind)
		switch {
		case builtin.Recognizes(gvk):
			typed, _ := builtin.New(gvk)
			if err := strictDecode(o.JSON, typed); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", o.id(), err))
			}
			o.Typed = typed
		case gvk.Group == "keda.sh":
			var so scaledObject
			if o.Kind != "ScaledObject" || o.APIVersion != "keda.sh/v1alpha1" {
				problems = append(problems, o.id()+": only keda.sh/v1alpha1 ScaledObject is known")
			} else if err := strictDecode(o.JSON, &so); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", o.id(), err))
			}
		default:
			if err := crds.validateCR(o.APIVersion, o.Kind, o.JSON); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", o.id(), err))
			}
			var meta struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(o.JSON, &meta); err == nil {
				raw, _ := json.Marshal(meta)
				if err := strictDecode(raw, &struct {
					Metadata metav1.ObjectMeta `json:"metadata"`
				}{}); err != nil {
					problems = append(problems, fmt.Sprintf("%s metadata: %v", o.id(), err))
				}
			}
			problems = append(problems, embeddedSpecs(o)...)
		}
	}
	return problems
}

// embeddedSpecs strictly decodes the Kubernetes specs the Altinity objects carry as free
// objects (x-kubernetes-preserve-unknown-fields): pod templates, volume claims, services.
func embeddedSpecs(o *object) []string {
	if !strings.HasPrefix(o.APIVersion, "clickhouse") {
		return nil
	}
	var cr struct {
		Spec struct {
			Templates struct {
				PodTemplates []struct {
					Name string          `json:"name"`
					Spec json.RawMessage `json:"spec"`
				} `json:"podTemplates"`
				VolumeClaimTemplates []struct {
					Name string          `json:"name"`
					Spec json.RawMessage `json:"spec"`
				} `json:"volumeClaimTemplates"`
				ServiceTemplates []struct {
					Name string          `json:"name"`
					Spec json.RawMessage `json:"spec"`
				} `json:"serviceTemplates"`
			} `json:"templates"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(o.JSON, &cr); err != nil {
		return []string{o.id() + ": " + err.Error()}
	}
	var problems []string
	for _, p := range cr.Spec.Templates.PodTemplates {
		if err := strictDecode(p.Spec, &corev1.PodSpec{}); err != nil {
			problems = append(problems, fmt.Sprintf("%s podTemplate %s: %v", o.id(), p.Name, err))
		}
	}
	for _, p := range cr.Spec.Templates.VolumeClaimTemplates {
		if err := strictDecode(p.Spec, &corev1.PersistentVolumeClaimSpec{}); err != nil {
			problems = append(problems, fmt.Sprintf("%s volumeClaimTemplate %s: %v", o.id(), p.Name, err))
		}
	}
	for _, p := range cr.Spec.Templates.ServiceTemplates {
		if err := strictDecode(p.Spec, &corev1.ServiceSpec{}); err != nil {
			problems = append(problems, fmt.Sprintf("%s serviceTemplate %s: %v", o.id(), p.Name, err))
		}
	}
	return problems
}

func find[T runtime.Object](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func crJSON(t *testing.T, objs []object, kind string) []map[string]any {
	var out []map[string]any
	for _, o := range objs {
		if o.Kind == kind {
			var m map[string]any
			require.NoError(t, json.Unmarshal(o.JSON, &m))
			out = append(out, m)
		}
	}
	return out
}

// dig follows a path of map keys and slice indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func num(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return -1
}

// vigieTargets maps a container image to the Dockerfile target it comes from.
func vigieTarget(image string) string {
	for _, tg := range append(slices.Clone(serverTargets), jobTargets...) {
		if strings.Contains(image, "/vigie/"+tg+":") || strings.HasPrefix(image, "vigie/"+tg+":") {
			return tg
		}
	}
	return ""
}

// checkWorkloads returns what is wrong with the Deployments and Jobs: probes on the admin
// port, resources, security contexts, PDBs, secret files mounted 0400 and copied, keys the
// binaries know.
func checkWorkloads(t *testing.T, objs []object) []string {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	secrets := map[string]*corev1.Secret{}
	for _, s := range find[*corev1.Secret](objs) {
		secrets[s.Name] = s
	}
	// Secrets Strimzi makes: one per KafkaUser, and the cluster CA certificate.
	made := map[string]bool{"vigie-cluster-ca-cert": true}
	for _, u := range crJSON(t, objs, "KafkaUser") {
		made[dig(u, "metadata", "name").(string)] = true
	}
	for name := range made {
		if secrets[name] != nil {
			bad("Secret %s: Strimzi writes a Secret of that name (a KafkaUser or the cluster CA)", name)
		}
	}
	pdbs := find[*policyv1.PodDisruptionBudget](objs)

	type workload struct {
		kind, name string
		tmpl       corev1.PodTemplateSpec
	}
	var ws []workload
	for _, d := range find[*appsv1.Deployment](objs) {
		ws = append(ws, workload{"Deployment", d.Name, d.Spec.Template})
		covered := false
		for _, p := range pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err == nil && sel.Matches(labelSet(d.Spec.Template.Labels)) {
				covered = true
			}
		}
		if !covered {
			bad("Deployment %s: no PodDisruptionBudget", d.Name)
		}
	}
	for _, j := range find[*batchv1.Job](objs) {
		ws = append(ws, workload{"Job", j.Name, j.Spec.Template})
	}
	configMaps := map[string]bool{}
	for _, cm := range find[*corev1.ConfigMap](objs) {
		configMaps[cm.Name] = true
	}
	// A Service selects the pods of a workload (a misspelt label selects nothing).
	for _, svc := range find[*corev1.Service](objs) {
		if len(svc.Spec.Selector) == 0 || svc.Spec.Selector["clickhouse.altinity.com/chi"] != "" {
			continue
		}
		found := false
		for _, w := range ws {
			if labelsMatch(svc.Spec.Selector, w.tmpl.Labels) {
				found = true
			}
		}
		if !found {
			bad("Service %s selects no pod template (%v)", svc.Name, svc.Spec.Selector)
		}
	}
	for _, w := range ws {
		id := w.kind + " " + w.name
		ps := w.tmpl.Spec
		for _, v := range ps.Volumes {
			if v.ConfigMap != nil && !configMaps[v.ConfigMap.Name] {
				bad("%s: volume %s reads ConfigMap %s, which the build does not make", id, v.Name, v.ConfigMap.Name)
			}
		}
		if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
			ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			bad("%s: pod securityContext needs runAsNonRoot and the RuntimeDefault seccomp profile", id)
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			bad("%s: the service account token is mounted (the pods call no API)", id)
		}
		secretVolumes := map[string]map[string]bool{} // volume -> paths
		for _, v := range ps.Volumes {
			var mode *int32
			paths := map[string]bool{}
			refs := []string{}
			switch {
			case v.Secret != nil:
				mode = v.Secret.DefaultMode
				refs = append(refs, v.Secret.SecretName)
				for _, it := range v.Secret.Items {
					paths[it.Path] = true
				}
			case v.Projected != nil:
				mode = v.Projected.DefaultMode
				for _, src := range v.Projected.Sources {
					if src.Secret != nil {
						refs = append(refs, src.Secret.Name)
						for _, it := range src.Secret.Items {
							paths[it.Path] = true
							if made[src.Secret.Name] && secrets[src.Secret.Name] == nil && !slices.Contains([]string{"password", "sasl.jaas.config", "ca.crt"}, it.Key) {
								bad("%s: secret %s is made by Strimzi, which writes no key %s", id, src.Secret.Name, it.Key)
							}
							if s := secrets[src.Secret.Name]; s != nil {
								if _, ok := s.StringData[it.Key]; !ok {
									if _, ok := s.Data[it.Key]; !ok {
										bad("%s: secret %s has no key %s", id, s.Name, it.Key)
									}
								}
							}
						}
					}
				}
			default:
				continue
			}
			for _, r := range refs {
				if secrets[r] == nil && !made[r] {
					bad("%s: volume %s reads secret %s, which nothing makes", id, v.Name, r)
				}
			}
			if mode == nil || *mode != 0o400 {
				bad("%s: secret volume %s: defaultMode must be 0400", id, v.Name)
			}
			secretVolumes[v.Name] = paths
		}
		for _, c := range ps.InitContainers {
			checkContainerSecurity(c, id, bad)
		}
		for _, c := range ps.Containers {
			checkContainerSecurity(c, id, bad)
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				bad("%s/%s: cpu and memory requests and a memory limit", id, c.Name)
			}
			tg := vigieTarget(c.Image)
			if tg == "" {
				if c.ReadinessProbe == nil || c.LivenessProbe == nil {
					bad("%s/%s: readiness and liveness probes", id, c.Name)
				}
				continue
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					bad("%s/%s: %s from a secret in the environment: Vigie reads secrets from files", id, c.Name, e.Name)
				}
			}
			problems = append(problems, checkKeys(id, commandKeys(t, tg, c.Args), env, c.Args)...)
			// Secret files: only through the copy (the services refuse group-readable files).
			copied := ""
			for _, ic := range ps.InitContainers {
				if len(ic.Command) > 0 && ic.Command[0] == "/usr/local/bin/secretcopy" {
					copied = ic.Command[len(ic.Command)-1]
				}
			}
			for _, m := range c.VolumeMounts {
				if _, ok := secretVolumes[m.Name]; ok {
					bad("%s/%s mounts secret volume %s itself: mount secretcopy's copies", id, c.Name, m.Name)
				}
			}
			var all map[string]bool
			for _, paths := range secretVolumes {
				all = paths
			}
			for k, v := range env {
				if strings.HasSuffix(k, "_FILE") && strings.HasPrefix(v, "/run/secrets/") {
					if copied != "/run/secrets" || !all[strings.TrimPrefix(v, "/run/secrets/")] {
						bad("%s/%s: %s=%s is not a copied secret file", id, c.Name, k, v)
					}
				}
			}
			if w.kind == "Job" {
				continue
			}
			listen := env["VIGIE_"+strings.ToUpper(tg)+"_ADMIN_LISTEN"]
			_, port, _ := strings.Cut(listen, ":")
			adminPort := int32(0)
			for _, p := range c.Ports {
				if p.Name == "admin" {
					adminPort = p.ContainerPort
				}
			}
			if port == "" || strconv.Itoa(int(adminPort)) != port {
				bad("%s/%s: port admin (%d) is not admin.listen (%q)", id, c.Name, adminPort, listen)
			}
			for name, pr := range map[string]struct {
				p    *corev1.Probe
				path string
			}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}, "startup": {c.StartupProbe, "/healthz"}} {
				if pr.p == nil || pr.p.HTTPGet == nil || pr.p.HTTPGet.Path != pr.path || pr.p.HTTPGet.Port.String() != "admin" {
					bad("%s/%s: %s probe must GET %s on the admin port", id, c.Name, name, pr.path)
				}
			}
		}
	}
	return problems
}

// labelsMatch says whether every key of sel has its value in labels.
func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

func checkContainerSecurity(c corev1.Container, id string, bad func(string, ...any)) {
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		bad("%s/%s: securityContext must be non-root, read-only root, no privilege escalation, drop ALL", id, c.Name)
	}
}

// topicSpec is schemas/kafka/topics.yaml.
type topicSpec struct {
	Topics []struct {
		Name              string            `yaml:"name"`
		Partitions        int               `yaml:"partitions"`
		ReplicationFactor int               `yaml:"replication_factor"`
		Config            map[string]string `yaml:"config"`
	} `yaml:"topics"`
}

func loadTopicSpec(t *testing.T) topicSpec {
	data, err := os.ReadFile(path(t, "schemas", "kafka", "topics.yaml"))
	require.NoError(t, err)
	var s topicSpec
	require.NoError(t, decodeStrict(t, data, &s))
	require.NotEmpty(t, s.Topics)
	return s
}

// checkKafka: the KafkaTopics are the topic spec, sized for the brokers of the node pools.
func checkKafka(t *testing.T, objs []object) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	brokers := 0
	for _, np := range crJSON(t, objs, "KafkaNodePool") {
		roles, _ := dig(np, "spec", "roles").([]any)
		if slices.Contains(roles, any("broker")) {
			brokers += num(dig(np, "spec", "replicas"))
		}
	}
	rf := min(3, brokers)
	isr := 1
	if rf == 3 {
		isr = 2
	}
	kafka := crJSON(t, objs, "Kafka")
	if len(kafka) != 1 {
		return []string{"one Kafka"}
	}
	if got := num(dig(kafka[0], "spec", "kafka", "config", "min.insync.replicas")); got != isr {
		bad("Kafka min.insync.replicas %d, want %d with %d brokers", got, isr, brokers)
	}
	if got := num(dig(kafka[0], "spec", "kafka", "config", "default.replication.factor")); got != rf {
		bad("Kafka default.replication.factor %d, want %d", got, rf)
	}
	topics := map[string]map[string]any{}
	for _, kt := range crJSON(t, objs, "KafkaTopic") {
		name := dig(kt, "metadata", "name").(string)
		if n, ok := dig(kt, "spec", "topicName").(string); ok {
			name = n
		}
		topics[name] = kt
		if dig(kt, "metadata", "labels", "strimzi.io/cluster") != dig(kafka[0], "metadata", "name") {
			bad("KafkaTopic %s: label strimzi.io/cluster is not the Kafka's name", name)
		}
	}
	spec := loadTopicSpec(t)
	if len(topics) != len(spec.Topics) {
		bad("%d KafkaTopics for %d topics in the spec", len(topics), len(spec.Topics))
	}
	for _, st := range spec.Topics {
		kt, ok := topics[st.Name]
		if !ok {
			bad("no KafkaTopic for %s", st.Name)
			continue
		}
		if got := num(dig(kt, "spec", "partitions")); got != st.Partitions {
			bad("KafkaTopic %s: %d partitions, the spec says %d", st.Name, got, st.Partitions)
		}
		want := st.ReplicationFactor
		if want == 0 {
			want = rf
		}
		if got := num(dig(kt, "spec", "replicas")); got != want {
			bad("KafkaTopic %s: replicas %d, want %d", st.Name, got, want)
		}
		cfg, _ := dig(kt, "spec", "config").(map[string]any)
		wantCfg := map[string]string{"min.insync.replicas": strconv.Itoa(isr)}
		for k, v := range st.Config {
			wantCfg[k] = v
		}
		for k, v := range wantCfg {
			if fmt.Sprint(cfg[k]) != v {
				bad("KafkaTopic %s: config %s=%v, want %s", st.Name, k, cfg[k], v)
			}
		}
		for k := range cfg {
			if _, ok := wantCfg[k]; !ok {
				bad("KafkaTopic %s: config %s is not in the spec", st.Name, k)
			}
		}
	}
	return problems
}

// checkScaling: a ScaledObject on lag for each consumer Deployment, on its own group and
// topic, up to the topic's partitions.
func checkScaling(t *testing.T, objs []object) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	deps := map[string]*appsv1.Deployment{}
	for _, d := range find[*appsv1.Deployment](objs) {
		deps[d.Name] = d
	}
	partitions := map[string]int{}
	for _, st := range loadTopicSpec(t).Topics {
		partitions[st.Name] = st.Partitions
	}
	scaled := map[string]bool{}
	defined := definedMetrics(t)
	for _, o := range objs {
		if o.Kind != "ScaledObject" {
			continue
		}
		var so scaledObject
		if err := json.Unmarshal(o.JSON, &so); err != nil {
			bad("%s: %v", o.id(), err)
			continue
		}
		d := deps[so.Spec.ScaleTargetRef.Name]
		if d == nil {
			bad("%s scales %s, which is no Deployment", o.id(), so.Spec.ScaleTargetRef.Name)
			continue
		}
		scaled[d.Name] = true
		if d.Spec.Replicas != nil {
			bad("Deployment %s sets replicas, which its ScaledObject %s owns (each apply would reset them)", d.Name, o.Name)
		}
		var group, topic string
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if strings.HasSuffix(e.Name, "_CONSUMER_GROUP_ID") {
				group = e.Value
			}
		}
		for _, tr := range so.Spec.Triggers {
			q := tr.Metadata["query"]
			if expr, err := metricsql.Parse(q); err != nil {
				bad("%s: query %q: %v", o.id(), q, err)
			} else {
				metricsql.VisitAll(expr, func(e metricsql.Expr) {
					if me, ok := e.(*metricsql.MetricExpr); ok {
						for _, lfs := range me.LabelFilterss {
							for _, lf := range lfs {
								if _, ok := lookupMetric(defined, lf.Value); lf.Label == "__name__" && !ok {
									bad("%s: query reads %s, which no Go code defines", o.id(), lf.Value)
								}
							}
						}
					}
				})
			}
			if tr.Type != "prometheus" || !strings.Contains(q, "vigie_kafka_consumer_lag_messages{") ||
				!strings.Contains(q, `group="`+group+`"`) {
				bad("%s: trigger must be the lag of group %q (vigie_kafka_consumer_lag_messages): %s", o.id(), group, q)
			}
			for name := range partitions {
				if strings.Contains(q, `topic="`+name+`"`) {
					topic = name
				}
			}
		}
		if topic == "" {
			bad("%s: the query names no topic of the spec", o.id())
		} else if so.Spec.MaxReplicaCount == nil || int(*so.Spec.MaxReplicaCount) > partitions[topic] {
			bad("%s: maxReplicaCount above the %d partitions of %s", o.id(), partitions[topic], topic)
		}
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
			bad("%s: minReplicaCount at least 1 (the lag metric comes from the members)", o.id())
		}
	}
	for _, n := range []string{"enricher", "writer", "correlator"} {
		if !scaled[n] {
			bad("Deployment %s is not scaled on lag", n)
		}
	}
	return problems
}

// reach lists which destinations the pods with these labels may send to, by the network
// policies: a name per peer ("kafka", "clickhouse", "monitoring", "internet:443", …).
func reach(pols []*networkingv1.NetworkPolicy, labels map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, p := range pols {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || !sel.Matches(labelSet(labels)) || !slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			continue
		}
		for _, r := range p.Spec.Egress {
			for _, peer := range r.To {
				out[peerName(peer, r.Ports)] = true
			}
		}
	}
	return out
}

func peerName(peer networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) string {
	switch {
	case peer.IPBlock != nil:
		var ps []string
		for _, p := range ports {
			ps = append(ps, p.Port.String())
		}
		return "internet:" + strings.Join(ps, ",")
	case peer.PodSelector != nil && peer.PodSelector.MatchLabels["strimzi.io/kind"] == "Kafka":
		return "kafka"
	case peer.PodSelector != nil && peer.PodSelector.MatchLabels["clickhouse.altinity.com/chi"] != "":
		return "clickhouse"
	case peer.PodSelector != nil && peer.PodSelector.MatchLabels["k8s-app"] == "kube-dns":
		return "dns"
	case peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "monitoring":
		return "monitoring"
	case peer.PodSelector != nil:
		return "pods:" + fmt.Sprint(peer.PodSelector.MatchLabels)
	}
	return "other"
}

// checkNetwork: each workload reaches only what it needs; analysts reach only ClickHouse and
// Grafana.
func checkNetwork(t *testing.T, objs []object) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	pols := find[*networkingv1.NetworkPolicy](objs)
	want := map[string][]string{
		"ingest":                {"dns", "kafka"},
		"enricher":              {"dns", "kafka", "clickhouse"},
		"writer":                {"dns", "kafka", "clickhouse"},
		"correlator":            {"dns", "kafka", "clickhouse"},
		"correlator-scheduler":  {"dns", "kafka", "clickhouse"},
		"vigiectl-migrate":      {"dns", "clickhouse"},
		"vigiectl-topics-check": {"dns", "kafka"},
		"grafana":               {"dns", "clickhouse", "monitoring", "internet:443"},
	}
	templates := map[string]map[string]string{}
	for _, d := range find[*appsv1.Deployment](objs) {
		templates[d.Name] = d.Spec.Template.Labels
	}
	for _, j := range find[*batchv1.Job](objs) {
		templates[j.Name] = j.Spec.Template.Labels
	}
	for name, labels := range templates {
		w, ok := want[name]
		if !ok {
			bad("%s: no expected reach declared in the test", name)
			continue
		}
		var got []string
		for k := range reach(pols, labels) {
			got = append(got, k)
		}
		slices.Sort(got)
		w = slices.Clone(w)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			bad("%s reaches %v, want %v", name, got, w)
		}
	}
	// A default deny of ingress for every pod of the namespace.
	deny := false
	for _, p := range pols {
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(p.Spec.Ingress) == 0 {
			deny = true
		}
		// Analysts: only to ClickHouse and Grafana.
		for _, r := range p.Spec.Ingress {
			for _, peer := range r.From {
				if peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels["vigie.io/access"] == "analyst" {
					to := p.Spec.PodSelector.MatchLabels
					if to["clickhouse.altinity.com/chi"] == "" && to["app.kubernetes.io/name"] != "grafana" {
						bad("NetworkPolicy %s lets analysts reach %v", p.Name, to)
					}
					for _, port := range r.Ports {
						if !slices.Contains([]string{"9000", "8123", "3000"}, port.Port.String()) {
							bad("NetworkPolicy %s lets analysts reach port %s", p.Name, port.Port.String())
						}
					}
				}
			}
		}
	}
	if !deny {
		bad("no default-deny ingress policy")
	}
	return problems
}

// checkTopology: the ClickHouse cluster and the Keeper quorum sized for the overlay.
func checkTopology(t *testing.T, objs []object, shards, replicas, keepers, kafkaNodes int) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	chi := crJSON(t, objs, "ClickHouseInstallation")
	chk := crJSON(t, objs, "ClickHouseKeeperInstallation")
	if len(chi) != 1 || len(chk) != 1 {
		return []string{"one ClickHouseInstallation and one ClickHouseKeeperInstallation"}
	}
	layout := dig(chi[0], "spec", "configuration", "clusters", 0, "layout")
	if num(dig(layout, "shardsCount")) != shards || num(dig(layout, "replicasCount")) != replicas {
		bad("ClickHouse layout %v, want %d shards x %d replicas", layout, shards, replicas)
	}
	if got := num(dig(chk[0], "spec", "configuration", "clusters", 0, "layout", "replicasCount")); got != keepers {
		bad("Keeper replicas %d, want %d", got, keepers)
	}
	for _, c := range dig(chi[0], "spec", "templates", "podTemplates", 0, "spec", "containers").([]any) {
		m := chImageTag.FindStringSubmatch(dig(c, "image").(string))
		if m == nil {
			bad("ClickHouse image %v", dig(c, "image"))
			continue
		}
		major, _ := strconv.Atoi(m[2])
		minor, _ := strconv.Atoi(m[3])
		if major < 25 || major == 25 && minor < 8 {
			bad("ClickHouse %s: 25.8 or newer", m[0])
		}
	}
	// The users' passwords come from the Secret, never written.
	users, _ := dig(chi[0], "spec", "configuration", "users").(map[string]any)
	for k, v := range users {
		if strings.HasSuffix(k, "/password") || strings.HasSuffix(k, "/password_sha256_hex") {
			bad("ClickHouse user setting %s=%v: use k8s_secret_password", k, v)
		}
	}
	nodes := 0
	for _, np := range crJSON(t, objs, "KafkaNodePool") {
		nodes += num(dig(np, "spec", "replicas"))
	}
	if nodes != kafkaNodes {
		bad("%d Kafka nodes, want %d", nodes, kafkaNodes)
	}
	return problems
}

func TestKubernetesOverlays(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov, func(t *testing.T) {
			objs, err := buildOverlay(t, path(t, "deploy", "k8s", "overlays", ov))
			require.NoError(t, err)
			require.Empty(t, decodeAll(t, objs))
			ns := map[string]bool{}
			for _, o := range objs {
				if o.Kind != "Namespace" {
					ns[o.Namespace] = true
				}
			}
			require.Len(t, ns, 1, "every object in one namespace: %v", ns)
			require.Empty(t, checkWorkloads(t, objs))
			require.Empty(t, checkKafka(t, objs))
			require.Empty(t, checkScaling(t, objs))
			require.Empty(t, checkNetwork(t, objs))
			switch ov {
			case "prod":
				require.Empty(t, checkTopology(t, objs, 2, 2, 3, 3))
			case "dev":
				require.Empty(t, checkTopology(t, objs, 1, 1, 1, 1))
			}
			// The Grafana provisioning and the alerting rules are the files of deploy/grafana and
			// deploy/prometheus, not copies.
			for _, cm := range find[*corev1.ConfigMap](objs) {
				if strings.HasPrefix(cm.Name, "vigie-prometheus-rules") {
					data, err := os.ReadFile(path(t, "deploy", "prometheus", "rules", "vigie.yml"))
					require.NoError(t, err)
					require.Equal(t, string(data), cm.Data["vigie.yml"])
				}
			}
		})
	}
}

// TestKubernetesChecksCatchMistakes: a typo in a field of any kind of object, and a policy
// mistake, fail.
func TestKubernetesChecksCatchMistakes(t *testing.T) {
	objs, err := buildOverlay(t, path(t, "deploy", "k8s", "overlays", "prod"))
	require.NoError(t, err)
	require.Empty(t, decodeAll(t, objs))
	mutate := func(kind, name, from, to string) []object {
		out := slices.Clone(objs)
		for i, o := range out {
			if o.Kind == kind && (name == "" || o.Name == name) {
				m := strings.Replace(string(o.JSON), from, to, 1)
				require.NotEqual(t, string(o.JSON), m, "%s %s: %s not found", kind, name, from)
				out[i].JSON = []byte(m)
				out[i].Typed = nil
				return out
			}
		}
		t.Fatalf("no %s %s", kind, name)
		return nil
	}
	for name, c := range map[string]struct{ kind, obj, from, to string }{
		"Deployment field":    {"Deployment", "writer", `"readinessProbe"`, `"readynessProbe"`},
		"Service field":       {"Service", "ingest", `"selector"`, `"selectors"`},
		"NetworkPolicy field": {"NetworkPolicy", "writer", `"policyTypes"`, `"policyType"`},
		"PDB field":           {"PodDisruptionBudget", "writer", `"maxUnavailable"`, `"maxUnavailble"`},
		"CHI field":           {"ClickHouseInstallation", "", `"shardsCount"`, `"shardCount"`},
		"CHI pod template":    {"ClickHouseInstallation", "", `"allowPrivilegeEscalation"`, `"allowPrivilegeEscallation"`},
		"CHK field":           {"ClickHouseKeeperInstallation", "", `"replicasCount"`, `"replicaCount"`},
		"Kafka field":         {"Kafka", "", `"listeners"`, `"listener"`},
		"Kafka enum":          {"Kafka", "", `"scram-sha-512"`, `"scram-sha-256"`},
		"NodePool field":      {"KafkaNodePool", "", `"roles"`, `"role"`},
		"KafkaTopic field":    {"KafkaTopic", "", `"partitions"`, `"partition"`},
		"KafkaUser field":     {"KafkaUser", "", `"operations"`, `"operation"`},
		"ScaledObject field":  {"ScaledObject", "writer", `"maxReplicaCount"`, `"maxReplicas"`},
	} {
		problems := decodeAll(t, mutate(c.kind, c.obj, c.from, c.to))
		require.NotEmpty(t, problems, "a %s typo passed", name)
	}
	// Policy checks on decoded objects.
	check := func(objs []object) []string {
		var p []string
		if p = decodeAll(t, objs); len(p) > 0 {
			return p
		}
		p = append(p, checkWorkloads(t, objs)...)
		p = append(p, checkKafka(t, objs)...)
		p = append(p, checkScaling(t, objs)...)
		p = append(p, checkNetwork(t, objs)...)
		return append(p, checkTopology(t, objs, 2, 2, 3, 3)...)
	}
	for name, c := range map[string]struct{ kind, obj, from, to string }{
		"secret mode 0440":      {"Deployment", "ingest", `"defaultMode":256`, `"defaultMode":288`},
		"root container":        {"Deployment", "writer", `"runAsNonRoot":true`, `"runAsNonRoot":false`},
		"liveness on readyz":    {"Deployment", "enricher", `"path":"/healthz","port":"admin"},"periodSeconds":10`, `"path":"/readyz","port":"admin"},"periodSeconds":10`},
		"unknown key":           {"Deployment", "writer", `VIGIE_WRITER_MEMORY_LIMIT_MB`, `VIGIE_WRITER_MEMORY_LIMIT`},
		"topic partitions":      {"KafkaTopic", "detections.raw.v1", `"partitions":6`, `"partitions":12`},
		"topic retention":       {"KafkaTopic", "detections.dlq.v1", `"retention.ms":"2592000000"`, `"retention.ms":"604800000"`},
		"scale beyond parts":    {"ScaledObject", "writer", `"maxReplicaCount":6`, `"maxReplicaCount":12`},
		"ingest reaches CH":     {"NetworkPolicy", "ingest", `"egress":[{`, `"egress":[{"to":[{"podSelector":{"matchLabels":{"clickhouse.altinity.com/chi":"vigie"}}}]},{`},
		"analysts reach writer": {"NetworkPolicy", "writer", `"ingress":[{`, `"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"vigie.io/access":"analyst"}}}]},{`},
		"one shard":             {"ClickHouseInstallation", "", `"shardsCount":2`, `"shardsCount":1`},
		"password in the CR":    {"ClickHouseInstallation", "", `"vigie/k8s_secret_password"`, `"vigie/password"`},
		"writer lag on own lag": {"ScaledObject", "writer", `group=\"vigie-writer\"`, `group=\"vigie-enricher\"`},
		"secret name clash":     {"Secret", "vigie-ingest-keys", `"name":"vigie-ingest-keys"`, `"name":"vigie-ingest"`},
		"service selector typo": {"Service", "writer", `"selector":{"app.kubernetes.io/name":"writer"}`, `"selector":{"app.kubernetes.io/name":"wrtier"}`},
		"missing configmap":     {"Deployment", "grafana", `"name":"grafana-dashboards-`, `"name":"grafana-dashbords-`},
		"lag metric misspelt":   {"ScaledObject", "enricher", `vigie_kafka_consumer_lag_messages{`, `vigie_kafka_consumer_lag{`},
		"replicas beside KEDA":  {"Deployment", "writer", `"spec":{`, `"spec":{"replicas":2,`},
		"secret from env":       {"Deployment", "writer", `"env":[`, `"env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"vigie-clickhouse","key":"vigie"}}},`},
	} {
		require.NotEmpty(t, check(mutate(c.kind, c.obj, c.from, c.to)), "%s passed", name)
	}
}
