package chdb

// The engine's configuration file: the folders of its file-reading features, and the access
// control of its one user, whose privileges are those of roles only.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Config is what WriteConfig puts in the engine's configuration beyond its data folder.
type Config struct {
	// Roles are granted to the engine's user, which has no privilege of its own: a session
	// has the privileges of the role set on it (Session.SetRole), or of all of them.
	Roles []Role
	// Profiles are settings profiles a session may apply (SET profile = 'name'): their
	// constraints then hold for that session.
	Profiles []Profile
	// Merge is a configuration file merged over this one (macros, remote_servers,
	// zookeeper, ...), "" for none.
	Merge string
}

// Role is a role and its privileges.
type Role struct {
	Name string
	// Grants are GRANT and REVOKE statements without their TO or FROM clause, in order:
	// "GRANT SELECT ON db.*", "REVOKE SOURCES ON *.*".
	Grants []string
}

// Profile is a settings profile.
type Profile struct {
	Name     string
	Settings []ProfileSetting
}

// ProfileSetting is a setting's value in a profile and its constraint: Min and Max bound
// what a session may set ("" for no bound), Const forbids any change.
type ProfileSetting struct {
	Name, Value, Min, Max string
	Const                 bool
}

// ConfigFile is the name WriteConfig gives the configuration file, to pass to Open as
// "--config-file=" + its path.
const ConfigFile = "engine-config.xml"

// WriteConfig writes the engine's configuration into dir (created if needed): ConfigFile and
// the users file it names. The folders the engine reads files from (user_files_path, the
// user scripts, format schemas, dictionary libraries) are set under dataDir, instead of the
// engine's defaults under /var/lib/clickhouse. It returns the configuration file's path.
func WriteConfig(dir, dataDir string, c Config) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("engine config: %w", err)
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("engine config: %w", err)
	}
	usersPath := filepath.Join(dir, "engine-users.xml")
	var b bytes.Buffer
	b.WriteString("<clickhouse>\n")
	for _, p := range []struct{ key, folder string }{
		{"user_files_path", "user_files"}, {"user_scripts_path", "user_scripts"},
		{"format_schema_path", "format_schemas"}, {"dictionaries_lib_path", "dictionaries_lib"},
	} {
		fmt.Fprintf(&b, "  <%s>%s/</%s>\n", p.key, xmlText(filepath.Join(dataDir, p.folder)), p.key)
	}
	fmt.Fprintf(&b, "  <user_directories><users_xml><path>%s</path></users_xml></user_directories>\n</clickhouse>\n", xmlText(usersPath))
	if err := writeFile(usersPath, usersXML(c)); err != nil {
		return "", err
	}
	// The engine merges the files of <name>.d/ over <name>.xml.
	mergeDir := filepath.Join(dir, strings.TrimSuffix(ConfigFile, ".xml")+".d")
	if err := os.RemoveAll(mergeDir); err != nil {
		return "", fmt.Errorf("engine config: %w", err)
	}
	if c.Merge != "" {
		extra, err := os.ReadFile(c.Merge)
		if err != nil {
			return "", fmt.Errorf("engine config: %w", err)
		}
		if err := os.MkdirAll(mergeDir, 0o700); err != nil {
			return "", fmt.Errorf("engine config: %w", err)
		}
		if err := writeFile(filepath.Join(mergeDir, "merged.xml"), extra); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, ConfigFile)
	return path, writeFile(path, b.Bytes())
}

// usersXML is the engine's users file: the one user chDB's sessions run as, "default" with
// the roles of c (or every privilege when c has none), the roles and the profiles.
func usersXML(c Config) []byte {
	var b bytes.Buffer
	b.WriteString("<clickhouse>\n  <profiles>\n    <default/>\n")
	for _, p := range c.Profiles {
		fmt.Fprintf(&b, "    <%s>\n", p.Name)
		for _, s := range p.Settings {
			fmt.Fprintf(&b, "      <%s>%s</%s>\n", s.Name, xmlText(s.Value), s.Name)
		}
		b.WriteString("      <constraints>\n")
		for _, s := range p.Settings {
			if s.Min == "" && s.Max == "" && !s.Const {
				continue
			}
			fmt.Fprintf(&b, "        <%s>", s.Name)
			if s.Min != "" {
				fmt.Fprintf(&b, "<min>%s</min>", xmlText(s.Min))
			}
			if s.Max != "" {
				fmt.Fprintf(&b, "<max>%s</max>", xmlText(s.Max))
			}
			if s.Const {
				b.WriteString("<const/>")
			}
			fmt.Fprintf(&b, "</%s>\n", s.Name)
		}
		fmt.Fprintf(&b, "      </constraints>\n    </%s>\n", p.Name)
	}
	b.WriteString("  </profiles>\n  <roles>\n")
	names := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		names[i] = r.Name
		fmt.Fprintf(&b, "    <%s><grants>\n", r.Name)
		for _, g := range r.Grants {
			fmt.Fprintf(&b, "      <query>%s</query>\n", xmlText(g))
		}
		fmt.Fprintf(&b, "    </grants></%s>\n", r.Name)
	}
	b.WriteString("  </roles>\n  <users>\n    <default>\n      <password></password>\n")
	b.WriteString("      <profile>default</profile>\n      <quota>default</quota>\n")
	if len(names) > 0 {
		fmt.Fprintf(&b, "      <grants><query>GRANT %s</query></grants>\n", xmlText(strings.Join(names, ", ")))
	} else {
		b.WriteString("      <access_management>1</access_management>\n")
	}
	b.WriteString("    </default>\n  </users>\n  <quotas><default/></quotas>\n</clickhouse>\n")
	return b.Bytes()
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("engine config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("engine config: %w", err)
	}
	return nil
}
