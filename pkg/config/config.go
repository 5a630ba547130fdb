// Package config loads a service's configuration into a typed struct: defaults set by the
// caller, then a YAML file, then environment variables, then command-line flags, each layer
// overriding the one before; then the struct's Validate method.
//
// Environment variable and flag names derive from the yaml tags, so a field has one name
// everywhere. For the field Kafka.Brokers tagged `yaml:"kafka"` / `yaml:"brokers"` of a
// service whose prefix is VIGIE_INGEST:
//
//	YAML:  kafka: {brokers: [127.0.0.1:19092]}
//	env:   VIGIE_INGEST_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19093
//	flag:  -kafka.brokers=127.0.0.1:19092
//
// The YAML file is named by -config or <PREFIX>_CONFIG. Unknown YAML keys are errors, so a
// misspelt setting never silently falls back to its default.
//
// A struct field tagged `yaml:",inline"` (typically an embedded struct such as service.Base)
// has its keys at the level of the parent, in YAML, environment and flags alike:
//
//	type Config struct {
//		service.Base `yaml:",inline"`        // admin.listen, log.level, shutdown_timeout
//		Topics Topics `yaml:"topics"`         // topics.raw
//	}
//
// Two fields that end up with the same key are an error of Load.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Validator is implemented by configuration structs. Validate returns an error naming the
// first bad field, e.g. `kafka.brokers: must not be empty`.
type Validator interface {
	Validate() error
}

// Load fills cfg, a pointer to a struct already holding its defaults, from the YAML file,
// the environment and args (without the program name), then validates it. envPrefix is
// e.g. "VIGIE_INGEST". A -h or -help flag returns flag.ErrHelp after printing usage.
func Load(cfg Validator, envPrefix string, args []string) error {
	root := reflect.ValueOf(cfg)
	if root.Kind() != reflect.Pointer || root.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, got %T", cfg)
	}
	leaves, err := collect(root.Elem(), nil, root.Elem().Type().Name())
	if err == nil {
		err = checkUnique(leaves)
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}

	fs := flag.NewFlagSet(envPrefix, flag.ContinueOnError)
	configPath := fs.String("config", os.Getenv(envPrefix+"_CONFIG"), "path of a YAML configuration file (env "+envPrefix+"_CONFIG)")
	set := map[string]string{}
	for _, l := range leaves {
		fs.Var(flagValue{name: l.name, set: set, current: l.value}, l.name, fmt.Sprintf("%s (env %s)", l.kind(), l.env(envPrefix)))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}

	if *configPath != "" {
		if err := loadYAML(*configPath, cfg); err != nil {
			return err
		}
	}
	if err := unknownEnv(envPrefix, leaves); err != nil {
		return err
	}
	for _, l := range leaves {
		key := l.env(envPrefix)
		if v, ok := os.LookupEnv(key); ok {
			if err := setValue(l.value, v); err != nil {
				return fmt.Errorf("config: environment %s=%q: %w", key, v, err)
			}
		}
	}
	for _, l := range leaves {
		if v, ok := set[l.name]; ok {
			if err := setValue(l.value, v); err != nil {
				return fmt.Errorf("config: flag -%s=%q: %w", l.name, v, err)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func loadYAML(path string, cfg any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, errEOF) {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// unknownEnv refuses an environment variable of the service's prefix that names no key: a
// misspelt or renamed setting (VIGIE_WRITER_ADMIN_ADDR for admin.listen) would otherwise be
// ignored without a word, and the service would run on a default.
func unknownEnv(prefix string, leaves []leaf) error {
	known := map[string]bool{prefix + "_CONFIG": true}
	for _, l := range leaves {
		known[l.env(prefix)] = true
	}
	var unknown []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, prefix+"_") && !known[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("config: environment %s: no such setting (the names follow the YAML keys, e.g. %s)",
		strings.Join(unknown, ", "), leaves[0].env(prefix))
}

// errEOF is what yaml.v3 returns for an empty document; an empty file sets nothing.
var errEOF = func() error { return yaml.NewDecoder(strings.NewReader("")).Decode(&struct{}{}) }()

// leaf is one settable field: a value, its dotted name from the yaml tags.
type leaf struct {
	name  string // dotted key, e.g. kafka.brokers
	field string // Go field path, for errors
	value reflect.Value
}

func (l leaf) env(prefix string) string {
	return prefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(l.name))
}

func (l leaf) kind() string {
	if l.value.Type() == durationType {
		return "duration"
	}
	if l.value.Kind() == reflect.Slice {
		return "comma-separated list"
	}
	return l.value.Kind().String()
}

var durationType = reflect.TypeOf(time.Duration(0))

// collect lists the settable fields of v under path; goPath names v's fields in errors.
// Fields tagged `yaml:",inline"` add their fields at v's level.
func collect(v reflect.Value, path []string, goPath string) ([]leaf, error) {
	var out []leaf
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		inline := hasOption(opts, "inline")
		if tag == "-" || (!f.IsExported() && !(inline && f.Anonymous)) {
			continue
		}
		fv, field := v.Field(i), goPath+"."+f.Name
		if inline {
			if fv.Kind() != reflect.Struct {
				return nil, fmt.Errorf("field %s: inline needs a struct, not %s", field, fv.Type())
			}
			sub, err := collect(fv, path, field)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		p := append(append([]string(nil), path...), tag)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			sub, err := collect(fv, p, field)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		out = append(out, leaf{name: strings.Join(p, "."), field: field, value: fv})
	}
	return out, nil
}

// checkUnique refuses two fields with one key (an inline struct and its parent both
// defining log.level, say): YAML, environment and flags would not know which one is meant.
func checkUnique(leaves []leaf) error {
	seen := make(map[string]string, len(leaves))
	for _, l := range leaves {
		if prev, dup := seen[l.name]; dup {
			return fmt.Errorf("key %s is defined twice, by %s and %s", l.name, prev, l.field)
		}
		seen[l.name] = l.field
	}
	return nil
}

func hasOption(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func setValue(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Slice:
		// A comma-separated list of any of the scalar kinds above.
		items := reflect.MakeSlice(v.Type(), 0, strings.Count(s, ",")+1)
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if elem.Kind() == reflect.Slice {
				return fmt.Errorf("unsupported list of lists %s", v.Type())
			}
			if err := setValue(elem, item); err != nil {
				return fmt.Errorf("item %q: %w", item, err)
			}
			items = reflect.Append(items, elem)
		}
		v.Set(items)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// flagValue records a flag's text; Load applies it after the YAML file and the environment.
type flagValue struct {
	name    string
	set     map[string]string
	current reflect.Value
}

func (f flagValue) String() string {
	if !f.current.IsValid() {
		return ""
	}
	if f.current.Kind() == reflect.Slice {
		items := make([]string, f.current.Len())
		for i := range items {
			items[i] = fmt.Sprint(f.current.Index(i).Interface())
		}
		return strings.Join(items, ",")
	}
	return fmt.Sprint(f.current.Interface())
}

func (f flagValue) Set(s string) error {
	f.set[f.name] = s
	return nil
}

// IsBoolFlag lets boolean fields be set with a bare -name.
func (f flagValue) IsBoolFlag() bool { return f.current.IsValid() && f.current.Kind() == reflect.Bool }
