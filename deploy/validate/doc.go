// Package validate checks Vigie's deployment files without a container engine or a cluster:
// the Dockerfile (parsed with BuildKit's parser) and the images it describes (assembled as OCI
// image layouts from statically built binaries with go-containerregistry), the compose stack
// (compose-go), the Kubernetes overlays (built with kustomize's krusty; built-in objects
// strictly decoded into k8s.io/api types, operators' objects validated against their CRD
// schemas from ../shared/crds) and the Prometheus rules (every metric they read exists in the
// Go code). The commands under cmd/ are the images' helpers (healthcheck, secretcopy).
package validate
