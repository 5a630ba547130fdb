package pseudonym

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vigie/vigie/pkg/config"
	"gopkg.in/yaml.v3"
)

// Environment variables read by FromEnv.
const (
	// EnvKeys holds comma-separated "version:hexsecret" pairs, oldest first, e.g.
	// "k1:ab12…,k2:cd34…".
	EnvKeys = "VIGIE_PSEUDONYM_KEYS"
	// EnvActive names the version used for writing; default: the last pair of EnvKeys.
	EnvActive = "VIGIE_PSEUDONYM_ACTIVE"
	// EnvBlockKey holds the hex block key (serial-block ids).
	EnvBlockKey = "VIGIE_BLOCK_KEY"
)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// Key is one version of the pseudonym key.
type Key struct {
	Version string
	Secret  []byte
}

// Keyring holds every loaded key version and which one is active for writing.
type Keyring struct {
	active string
	order  []string
	byVer  map[string]*Pseudonymizer
}

// KeyFile is the YAML layout of a key file:
//
//	active: k2
//	default_country_code: "33"
//	block_key: 77e1…  # hex, the serial-block ids' own key
//	keys:             # oldest first: each version's pseudonyms derive from the one before
//	  k1: 5f0c…       # hex, at least 32 bytes (64 hex digits); `openssl rand -hex 32`
//	  k2: 9a41…
type KeyFile struct {
	Active             string    `yaml:"active"`
	DefaultCountryCode string    `yaml:"default_country_code"`
	BlockKey           string    `yaml:"block_key"`
	Keys               yaml.Node `yaml:"keys"`
}

// NewKeyring builds a keyring from the key versions, oldest first, and the block key.
// defaultCC is the country code (digits, e.g. "33", or empty) used to normalise national
// dialled numbers.
func NewKeyring(active string, keys []Key, block []byte, defaultCC string) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("pseudonym keys: no key loaded")
	}
	for _, c := range defaultCC {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("pseudonym keys: default country code %q must be digits", defaultCC)
		}
	}
	if len(defaultCC) > 3 {
		return nil, fmt.Errorf("pseudonym keys: default country code %q has more than 3 digits", defaultCC)
	}
	if len(block) < MinKeyBytes {
		return nil, fmt.Errorf("pseudonym keys: the block key has %d bytes, at least %d needed", len(block), MinKeyBytes)
	}
	blockMAC := newMACPool(block)
	k := &Keyring{active: active, byVer: make(map[string]*Pseudonymizer, len(keys))}
	var chain []*macPool
	for _, key := range keys {
		v := key.Version
		if !versionRE.MatchString(v) {
			return nil, fmt.Errorf("pseudonym keys: version %q must match %s", v, versionRE)
		}
		if _, dup := k.byVer[v]; dup {
			return nil, fmt.Errorf("pseudonym keys: version %q is listed twice", v)
		}
		if len(key.Secret) < MinKeyBytes {
			return nil, fmt.Errorf("pseudonym keys: key %q has %d bytes, at least %d needed", v, len(key.Secret), MinKeyBytes)
		}
		if bytes.Equal(key.Secret, block) {
			return nil, fmt.Errorf("pseudonym keys: key %q is the block key; the block key must be a key of its own", v)
		}
		chain = append(chain[:len(chain):len(chain)], newMACPool(key.Secret))
		k.byVer[v] = &Pseudonymizer{version: v, defaultCC: defaultCC, chain: chain, block: blockMAC}
		k.order = append(k.order, v)
	}
	if _, ok := k.byVer[active]; !ok {
		return nil, fmt.Errorf("pseudonym keys: active version %q is not among the loaded keys %v", active, k.Versions())
	}
	return k, nil
}

// LoadFile reads a YAML key file (see KeyFile). A file that group or others may read (mode
// beyond 0600), or that is not a regular file, is refused: the keys are what stands between
// a pseudonym and the IMEI behind it.
func LoadFile(path string) (*Keyring, error) {
	f, keys, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, err := hex.DecodeString(strings.TrimSpace(f.BlockKey))
	if err != nil || f.BlockKey == "" {
		return nil, fmt.Errorf("pseudonym key file %s: block_key must be a hex key", path)
	}
	k, err := NewKeyring(f.Active, keys, block, f.DefaultCountryCode)
	if err != nil {
		return nil, fmt.Errorf("pseudonym key file %s: %w", path, err)
	}
	return k, nil
}

// ReadFile reads a key file and its keys in the order it lists them, without building a
// keyring (vigiectl keys rotate rewrites the file).
func ReadFile(path string) (KeyFile, []Key, error) {
	data, err := config.ReadSecret(path)
	if err != nil {
		return KeyFile{}, nil, fmt.Errorf("pseudonym key file: %w", err)
	}
	var f KeyFile
	if err := yaml.Unmarshal([]byte(data), &f); err != nil {
		return KeyFile{}, nil, fmt.Errorf("parse pseudonym key file %s: %w", path, err)
	}
	if f.Keys.Kind != yaml.MappingNode {
		return KeyFile{}, nil, fmt.Errorf("pseudonym key file %s: keys must map versions to hex keys, oldest first", path)
	}
	var keys []Key
	for i := 0; i+1 < len(f.Keys.Content); i += 2 {
		v, h := f.Keys.Content[i].Value, f.Keys.Content[i+1].Value
		s, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil {
			return KeyFile{}, nil, fmt.Errorf("pseudonym key file %s: key %q is not hex", path, v)
		}
		keys = append(keys, Key{Version: v, Secret: s})
	}
	return f, keys, nil
}

// FromEnv reads keys from EnvKeys, EnvActive and EnvBlockKey through getenv (os.Getenv in
// production).
func FromEnv(getenv func(string) string, defaultCC string) (*Keyring, error) {
	raw := strings.TrimSpace(getenv(EnvKeys))
	if raw == "" {
		return nil, fmt.Errorf("pseudonym keys: %s is empty", EnvKeys)
	}
	var keys []Key
	for _, pair := range strings.Split(raw, ",") {
		v, h, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok {
			return nil, fmt.Errorf("pseudonym keys: %s entries must be version:hexsecret", EnvKeys)
		}
		s, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("pseudonym keys: %s key %q is not hex", EnvKeys, v)
		}
		keys = append(keys, Key{Version: v, Secret: s})
	}
	active := getenv(EnvActive)
	if active == "" {
		active = keys[len(keys)-1].Version
	}
	block, err := hex.DecodeString(strings.TrimSpace(getenv(EnvBlockKey)))
	if err != nil {
		return nil, fmt.Errorf("pseudonym keys: %s is not hex", EnvBlockKey)
	}
	return NewKeyring(active, keys, block, defaultCC)
}

// Active returns the Pseudonymizer of the active key version, the one to write with.
func (k *Keyring) Active() *Pseudonymizer { return k.byVer[k.active] }

// Version returns the Pseudonymizer of a loaded key version, to recompute pseudonyms of an
// older version during a rotation.
func (k *Keyring) Version(v string) (*Pseudonymizer, bool) {
	p, ok := k.byVer[v]
	return p, ok
}

// Versions lists the loaded key versions, oldest first.
func (k *Keyring) Versions() []string { return slices.Clone(k.order) }

// Forward maps a pseudonym stored under version from onto the active version, through every
// version between them (each step needs only the next version's key): what `vigiectl keys
// forward` applies to stored data after a rotation. A version after the active one, or one
// not loaded, is an error.
func (k *Keyring) Forward(from, pseudo string) (string, error) {
	i, a := slices.Index(k.order, from), slices.Index(k.order, k.active)
	if i < 0 {
		return "", fmt.Errorf("pseudonym keys: version %q is not loaded (loaded: %v)", from, k.order)
	}
	if i > a {
		return "", fmt.Errorf("pseudonym keys: version %q comes after the active version %q", from, k.active)
	}
	return k.Active().forward(pseudo, i+1), nil
}
