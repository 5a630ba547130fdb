package pseudonym

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Rotate adds a new key version at the end of the key file's chain and makes it active:
// version (empty: the last version's trailing number plus one, k1 → k2) with a new random
// key of KeyBytes bytes. The file must load before (LoadFile) and loads after; it is
// replaced atomically (a new 0600 file renamed over it), comments and order kept. The new
// version's pseudonyms derive from the previous version's (Pseudonymizer.Forward), so
// whoever holds the new key can map stored pseudonyms forward without clear identifiers.
func Rotate(path, version string) (added string, err error) {
	if _, err := LoadFile(path); err != nil {
		return "", err
	}
	_, keys, err := ReadFile(path)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("pseudonym key file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return "", fmt.Errorf("parse pseudonym key file %s: not one YAML document", path)
	}
	if version == "" {
		if version, err = nextVersion(keys[len(keys)-1].Version); err != nil {
			return "", fmt.Errorf("pseudonym key file %s: %w", path, err)
		}
	}
	if !versionRE.MatchString(version) {
		return "", fmt.Errorf("pseudonym key file %s: version %q must match %s", path, version, versionRE)
	}
	for _, k := range keys {
		if k.Version == version {
			return "", fmt.Errorf("pseudonym key file %s: version %q is already listed", path, version)
		}
	}
	secret := make([]byte, KeyBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	root := doc.Content[0]
	activeSet := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "active":
			root.Content[i+1].SetString(version)
			activeSet = true
		case "keys":
			root.Content[i+1].Content = append(root.Content[i+1].Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: version}, &yaml.Node{Kind: yaml.ScalarNode, Value: hex.EncodeToString(secret)})
		}
	}
	if !activeSet {
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "active"}, &yaml.Node{Kind: yaml.ScalarNode, Value: version})
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return "", err
	}
	if err := writeAtomic(path, out); err != nil {
		return "", fmt.Errorf("pseudonym key file %s: %w", path, err)
	}
	if _, err := LoadFile(path); err != nil {
		return "", fmt.Errorf("pseudonym key file %s after rotation: %w", path, err)
	}
	return version, nil
}

// KeyBytes is the size of the keys Rotate makes.
const KeyBytes = 32

var trailingNumber = regexp.MustCompile(`^(.*?)(\d+)$`)

// nextVersion is v with its trailing number plus one.
func nextVersion(v string) (string, error) {
	m := trailingNumber.FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("the last version %q does not end in a number: name the new version", v)
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return "", err
	}
	return m[1] + strconv.Itoa(n+1), nil
}

// writeAtomic replaces path with data: a 0600 file beside it, synced, renamed over it.
func writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
