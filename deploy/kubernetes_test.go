package deploy

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/davgw/davgw/config"
)

// manifests are the decoded documents of one file, by kind and name.
type manifests struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	deploys    map[string]*appsv1.Deployment
	services   map[string]*corev1.Service
	policies   map[string]*networkingv1.NetworkPolicy
}

// wantAPIVersion is the apiVersion of each kind the files may hold.
var wantAPIVersion = map[string]string{
	"ConfigMap":     "v1",
	"Secret":        "v1",
	"Service":       "v1",
	"Deployment":    "apps/v1",
	"NetworkPolicy": "networking.k8s.io/v1",
}

// loadManifests decodes every document of path strictly (an unknown or
// misspelt field is an error) into its Kubernetes API type.
func loadManifests(t *testing.T, path string) *manifests {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		deploys: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		policies: map[string]*networkingv1.NetworkPolicy{},
	}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		var head struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s document %d: %v", path, i+1, err)
		}
		if head.Kind == "" || head.Metadata.Name == "" {
			t.Fatalf("%s document %d has no kind or metadata.name", path, i+1)
		}
		where := fmt.Sprintf("%s: %s %s", path, head.Kind, head.Metadata.Name)
		if want, ok := wantAPIVersion[head.Kind]; !ok || head.APIVersion != want {
			t.Fatalf("%s: apiVersion %q, want %q", where, head.APIVersion, want)
		}
		var obj any
		switch name := head.Metadata.Name; head.Kind {
		case "ConfigMap":
			obj = newIn(m.configMaps, name)
		case "Secret":
			obj = newIn(m.secrets, name)
		case "Deployment":
			obj = newIn(m.deploys, name)
		case "Service":
			obj = newIn(m.services, name)
		case "NetworkPolicy":
			obj = newIn(m.policies, name)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
	}
	return m
}

// newIn adds a new T under name to m and returns it.
func newIn[T any](m map[string]*T, name string) *T {
	o := new(T)
	m[name] = o
	return o
}

// standIn gives each environment variable the Deployment provides a value
// of the shape davgw expects, so that the config parses and validates as
// it would in the pod; anything else is unset, as it would be there.
func standIn(t *testing.T, provided map[string]bool) func(string) (string, bool) {
	hash, err := bcrypt.GenerateFromPassword([]byte("stand-in"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) (string, bool) {
		switch {
		case !provided[name]:
			return "", false
		case strings.HasSuffix(name, "_HASH"):
			return string(hash), true
		}
		return "stand-in", true
	}
}

// TestKubernetesManifests checks deploy/kubernetes/ without a cluster: each
// document decodes strictly into its API type; the ConfigMap's config.toml
// passes davgw's own parser and validation with exactly the environment
// the Deployment gives it (its Secret's keys); the probes reach /readyz and
// /healthz on the port [server].admin_listen opens and the Service the one
// [server].listen opens, both on every address of the pod; the pods run as
// non-root on a read-only root file system without capabilities; the
// memory limit covers [s3].upload_memory; and the optional Redis is where
// the config's commented [locks].store points, set never to evict.
func TestKubernetesManifests(t *testing.T) {
	gw := loadManifests(t, "kubernetes/davgw.yaml")
	redis := loadManifests(t, "kubernetes/redis.yaml")

	d := gw.deploys["davgw"]
	if d == nil || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("davgw.yaml: want a Deployment davgw with one container")
	}
	pod := &d.Spec.Template.Spec
	c := &pod.Containers[0]

	// The config, as the pod gets it: the ConfigMap mounted where -config
	// points, the Secret's keys in the environment.
	cfgPath := argAfter(t, c.Args, "-config")
	mount, file := cfgPath[:strings.LastIndexByte(cfgPath, '/')], cfgPath[strings.LastIndexByte(cfgPath, '/')+1:]
	cm := gw.configMaps[configMapAt(t, pod, c, mount)]
	if cm == nil || cm.Data[file] == "" {
		t.Fatalf("-config %s: the ConfigMap mounted at %s has no %s", cfgPath, mount, file)
	}
	provided := map[string]bool{}
	for _, e := range c.Env {
		provided[e.Name] = true
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil || gw.secrets[ef.SecretRef.Name] == nil {
			t.Fatalf("envFrom should name a Secret of davgw.yaml")
		}
		s := gw.secrets[ef.SecretRef.Name]
		for k := range s.StringData {
			provided[k] = true
		}
	}
	toml := cm.Data[file]
	cfg, err := config.Parse([]byte(toml), standIn(t, provided))
	if err != nil {
		t.Fatalf("the ConfigMap's %s, with the Deployment's environment:\n%v", file, err)
	}

	t.Run("the probes and the Service reach the ports the config listens on", func(t *testing.T) {
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		listen := podPort(t, "[server].listen", cfg.Server.Listen)
		admin := podPort(t, "[server].admin_listen", cfg.Server.AdminListen)
		for what, pr := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			want := map[string]string{"readinessProbe": "/readyz"}[what]
			if want == "" {
				want = "/healthz"
			}
			if pr == nil || pr.HTTPGet == nil {
				t.Errorf("%s: want an httpGet of %s", what, want)
				continue
			}
			if got := resolvePort(pr.HTTPGet.Port, ports); pr.HTTPGet.Path != want || got != admin {
				t.Errorf("%s: GET %s on port %d, want %s on %d ([server].admin_listen)", what, pr.HTTPGet.Path, got, want, admin)
			}
		}
		svc := gw.services["davgw"]
		if svc == nil || len(svc.Spec.Ports) != 1 {
			t.Fatal("davgw.yaml: want a Service davgw with one port")
		}
		if got := resolvePort(svc.Spec.Ports[0].TargetPort, ports); got != listen {
			t.Errorf("Service davgw targets port %d, want %d ([server].listen); the admin port %d stays off it", got, listen, admin)
		}
		if !selects(svc.Spec.Selector, d.Spec.Template.Labels) || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("the Service's or Deployment's selector does not match the pod's labels %v", d.Spec.Template.Labels)
		}
	})

	t.Run("every container runs as non-root, read-only, without capabilities", func(t *testing.T) {
		for _, dep := range []*appsv1.Deployment{d, redis.deploys["davgw-redis"]} {
			if dep == nil {
				t.Fatal("missing the davgw or davgw-redis Deployment")
			}
			ps := dep.Spec.Template.Spec
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Errorf("%s: automountServiceAccountToken should be false (davgw needs no API access)", dep.Name)
			}
			for _, c := range ps.Containers {
				sc := c.SecurityContext
				nonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
				if sc == nil || !nonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s/%s: want runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation false and capabilities drop [ALL] only", dep.Name, c.Name)
				}
			}
		}
	})

	t.Run("the memory limit covers upload_memory and the gateway's own", func(t *testing.T) {
		uploads, err := cfg.S3.UploadMemory.Bytes()
		if err != nil || uploads == 0 {
			t.Fatalf("the ConfigMap should set [s3].upload_memory (the limit is sized from it): %v", err)
		}
		limit := c.Resources.Limits.Memory()
		request := c.Resources.Requests.Memory()
		// docs/operations.md: 64 MiB besides the part buffers (issue 8's
		// bound), and room for connections and listings.
		need := resource.NewQuantity(uploads+64<<20+128<<20, resource.BinarySI)
		if limit.IsZero() || limit.Cmp(*need) < 0 || request.IsZero() || request.Cmp(*limit) > 0 {
			t.Errorf("memory request %v, limit %v: want a request no larger than the limit, and a limit of at least upload_memory + 64 MiB + 128 MiB = %v", request, limit, need)
		}
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				if q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B")); err != nil || q.Cmp(*limit) >= 0 {
					t.Errorf("GOMEMLIMIT=%s should be below the memory limit %v", e.Value, limit)
				}
			}
		}
	})

	t.Run("a stopping pod has the time davgw's graceful shutdown takes", func(t *testing.T) {
		// SIGTERM: up to 30 s for requests under way, then up to 30 s to
		// write pending kept times (cmd/davgw/serve.go), after preStop.
		var preStop int64
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = c.Lifecycle.PreStop.Sleep.Seconds
		}
		if g := pod.TerminationGracePeriodSeconds; g == nil || *g < preStop+60 {
			t.Errorf("terminationGracePeriodSeconds %v: want at least preStop (%d s) + 60 s", g, preStop)
		}
	})

	t.Run("the optional Redis is where the commented store points", func(t *testing.T) {
		m := regexp.MustCompile(`(?m)^\s*#store = "(redis://[^"]+)"\s*$`).FindStringSubmatch(toml)
		if m == nil {
			t.Fatal(`the ConfigMap's [locks] should show the Redis store as a commented #store = "redis://..." line`)
		}
		withRedis := regexp.MustCompile(`(?m)^\s*store = "memory"\s*$`).ReplaceAllString(toml, `store = "`+m[1]+`"`)
		rcfg, err := config.Parse([]byte(withRedis), standIn(t, provided))
		if err != nil || rcfg.Locks.Store == "memory" {
			t.Fatalf("the config with store = %q: %v", m[1], err)
		}
		host := strings.TrimPrefix(m[1], "redis://")
		host = host[strings.LastIndexByte(host, '@')+1:]
		host = host[:strings.IndexByte(host, '/')]
		name, port, _ := net.SplitHostPort(host)
		svc := redis.services[name]
		if svc == nil || len(svc.Spec.Ports) != 1 || fmt.Sprint(svc.Spec.Ports[0].Port) != port {
			t.Fatalf("redis.yaml should have a Service %s on port %s", name, port)
		}
		rd := redis.deploys["davgw-redis"]
		if !selects(svc.Spec.Selector, rd.Spec.Template.Labels) {
			t.Errorf("Service %s does not select the Redis pods", name)
		}
		rc := rd.Spec.Template.Spec.Containers[0]
		if argAfter(t, rc.Args, "--maxmemory-policy") != "noeviction" {
			t.Error("Redis must run with --maxmemory-policy noeviction (an evicted key is a lost lock)")
		}
		if strings.Contains(m[1], "${REDIS_PASSWORD}") {
			found := false
			for _, e := range rc.Env {
				if r := e.ValueFrom; e.Name == "REDIS_PASSWORD" && r != nil && r.SecretKeyRef != nil {
					s := gw.secrets[r.SecretKeyRef.Name]
					found = s != nil && s.StringData[r.SecretKeyRef.Key] != ""
				}
			}
			if !found || !provided["REDIS_PASSWORD"] {
				t.Error("REDIS_PASSWORD must come from the Secret davgw reads, for Redis and davgw alike")
			}
		}
	})
}

// argAfter returns the argument after flag.
func argAfter(t *testing.T, args []string, flag string) string {
	t.Helper()
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	t.Fatalf("args %q have no %s", args, flag)
	return ""
}

// configMapAt is the name of the ConfigMap volume c mounts at dir.
func configMapAt(t *testing.T, pod *corev1.PodSpec, c *corev1.Container, dir string) string {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != dir {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				return v.ConfigMap.Name
			}
		}
	}
	t.Fatalf("no ConfigMap volume is mounted at %s", dir)
	return ""
}

// podPort is the port of a listen address, which must be reachable from
// outside the pod (every address, not loopback).
func podPort(t *testing.T, key, addr string) int32 {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s = %q: %v", key, addr, err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		t.Errorf("%s = %q: the kubelet and the Service reach the pod's own address; listen on 0.0.0.0 or [::]", key, addr)
	}
	var n int32
	fmt.Sscan(port, &n)
	return n
}

// resolvePort turns a port by name or number into the number.
func resolvePort(p intstr.IntOrString, named map[string]int32) int32 {
	if p.Type == intstr.String {
		return named[p.StrVal]
	}
	return p.IntVal
}

// selects reports whether selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
