package validate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// crdSchemas are the structural schemas of the operators' CRDs in ../shared/crds, by
// apiVersion and kind, compiled for strict validation.
type crdSchemas map[string]*jsonschema.Schema

var (
	crdOnce sync.Once
	crdSet  crdSchemas
	crdErr  error
)

func gvkKey(apiVersion, kind string) string { return apiVersion + "/" + kind }

// loadCRDs compiles every served version of every CRD of dir. The schemas are made strict as
// an API server with strict field validation is: an object's field that its schema does not
// declare is an error (unless x-kubernetes-preserve-unknown-fields), and
// x-kubernetes-int-or-string and nullable are turned into their JSON Schema equivalents.
func loadCRDs(t *testing.T) crdSchemas {
	t.Helper()
	crdOnce.Do(func() {
		crdSet = crdSchemas{}
		files, err := filepath.Glob(filepath.Join(crdDir(t), "*.yaml"))
		if err != nil || len(files) == 0 {
			crdErr = fmt.Errorf("no CRD in %s: %v", crdDir(t), err)
			return
		}
		c := jsonschema.NewCompiler()
		var urls []string
		var keys []string
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				crdErr = err
				return
			}
			var crd struct {
				Spec struct {
					Group string `json:"group"`
					Names struct {
						Kind string `json:"kind"`
					} `json:"names"`
					Versions []struct {
						Name   string `json:"name"`
						Served bool   `json:"served"`
						Schema struct {
							OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
						} `json:"schema"`
					} `json:"versions"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(data, &crd); err != nil {
				crdErr = fmt.Errorf("%s: %w", f, err)
				return
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served {
					continue
				}
				strict := strictSchema(v.Schema.OpenAPIV3Schema)
				raw, err := json.Marshal(strict)
				if err != nil {
					crdErr = err
					return
				}
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
				if err != nil {
					crdErr = err
					return
				}
				url := "file:///crds/" + filepath.Base(f) + "/" + v.Name + ".json"
				if err := c.AddResource(url, doc); err != nil {
					crdErr = err
					return
				}
				urls = append(urls, url)
				keys = append(keys, gvkKey(crd.Spec.Group+"/"+v.Name, crd.Spec.Names.Kind))
			}
		}
		for i, url := range urls {
			sch, err := c.Compile(url)
			if err != nil {
				crdErr = fmt.Errorf("compile %s: %w", url, err)
				return
			}
			crdSet[keys[i]] = sch
		}
	})
	require.NoError(t, crdErr)
	return crdSet
}

// strictSchema copies an OpenAPI v3 structural schema into a JSON Schema that refuses
// undeclared fields.
func strictSchema(in any) any {
	m, ok := in.(map[string]any)
	if !ok {
		return in
	}
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case "properties", "patternProperties", "$defs", "definitions":
			props := map[string]any{}
			for pk, pv := range v.(map[string]any) {
				props[pk] = strictSchema(pv)
			}
			out[k] = props
		case "items", "additionalProperties", "not":
			out[k] = strictSchema(v)
		case "allOf", "anyOf", "oneOf":
			var list []any
			for _, s := range v.([]any) {
				list = append(list, strictSchema(s))
			}
			out[k] = list
		default:
			if !strings.HasPrefix(k, "x-kubernetes-") && k != "nullable" {
				out[k] = v
			}
		}
	}
	if m["x-kubernetes-int-or-string"] == true {
		delete(out, "type")
		out["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
	}
	if m["nullable"] == true {
		if typ, ok := out["type"].(string); ok {
			out["type"] = []any{typ, "null"}
		}
	}
	_, hasProps := m["properties"]
	_, hasAdditional := m["additionalProperties"]
	if hasProps && !hasAdditional && m["x-kubernetes-preserve-unknown-fields"] != true {
		out["additionalProperties"] = false
	}
	return out
}

// validateCR validates an operator's object (JSON) against its CRD schema.
func (s crdSchemas) validateCR(apiVersion, kind string, obj []byte) error {
	sch, ok := s[gvkKey(apiVersion, kind)]
	if !ok {
		return fmt.Errorf("no CRD in ../shared/crds for %s %s", apiVersion, kind)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(obj))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

func TestCRDsStrict(t *testing.T) {
	crds := loadCRDs(t)
	for _, k := range []string{"kafka.strimzi.io/v1/Kafka", "kafka.strimzi.io/v1/KafkaNodePool", "kafka.strimzi.io/v1/KafkaTopic", "kafka.strimzi.io/v1/KafkaUser",
		"clickhouse.altinity.com/v1/ClickHouseInstallation", "clickhouse-keeper.altinity.com/v1/ClickHouseKeeperInstallation"} {
		require.Contains(t, crds, k)
	}
	good := `{"apiVersion":"kafka.strimzi.io/v1","kind":"KafkaTopic","metadata":{"name":"t"},"spec":{"partitions":3,"replicas":3,"config":{"retention.ms":"1"}}}`
	require.NoError(t, crds.validateCR("kafka.strimzi.io/v1", "KafkaTopic", []byte(good)))
	for _, badObj := range []string{
		strings.Replace(good, `"partitions"`, `"partition"`, 1), // a typo in a field
		strings.Replace(good, `"partitions":3`, `"partitions":"3"`, 1),
		strings.Replace(good, `"partitions":3`, `"partitions":0`, 1),
	} {
		require.Error(t, crds.validateCR("kafka.strimzi.io/v1", "KafkaTopic", []byte(badObj)), badObj)
	}
}
