package server

// Roles: the production role files (schemas/clickhouse/roles/*.sql) read into what the engine
// is configured with (its roles, grants and settings profiles) and what this server checks
// itself, so that the local server's rules are the production ones.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// Role is an access role: its grants, its settings profile, and what the server derives from
// them.
type Role struct {
	Name string
	// Grants are the role's GRANT and REVOKE statements without their TO/FROM clause.
	Grants []string
	// Profile is the role's settings profile (nil for none): each setting's value and bounds.
	Profile []chdb.ProfileSetting
	// ReadOnly is set when the profile has readonly = 1 or 2: reads only.
	ReadOnly bool
	// systemAll is SELECT on every system table (system.* or *.*); otherwise systemTables
	// lists those the role may read ("system.tables"), and "information_schema.*" when it
	// may read that database.
	systemAll    bool
	systemTables map[string]bool
	// anyDatabase is SELECT (or ALL) on every database (*.*): the role may start in "default".
	anyDatabase bool
}

// Roles are roles by name.
type Roles map[string]*Role

// RolePrefix is the prefix of Vigie's role names: a user's role "analyst" is vigie_analyst.
const RolePrefix = "vigie_"

// Lookup finds a role by its name or by its name without RolePrefix.
func (rs Roles) Lookup(name string) (*Role, bool) {
	if r, ok := rs[name]; ok {
		return r, true
	}
	r, ok := rs[RolePrefix+name]
	return r, ok
}

// Engine is the engine configuration that gives the engine these roles and profiles.
func (rs Roles) Engine() chdb.Config {
	var c chdb.Config
	for _, name := range rs.names() {
		r := rs[name]
		c.Roles = append(c.Roles, chdb.Role{Name: r.Name, Grants: r.Grants})
		if r.Profile != nil {
			c.Profiles = append(c.Profiles, chdb.Profile{Name: r.Name, Settings: r.Profile})
		}
	}
	return c
}

func (rs Roles) names() []string {
	names := make([]string, 0, len(rs))
	for n := range rs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// setup is what a session of the role's own pool runs once: the role, the profile's values
// (readonly last: it forbids nothing a later SET needs, but must come after the others), then
// the profile itself, whose constraints then hold for the session.
func (r *Role) setup() []string {
	out := []string{"SET ROLE " + quoteIdent(r.Name)}
	var values []sqlSetting
	var readonly *sqlSetting
	for _, s := range r.Profile {
		v := sqlSetting{Key: s.Name, Value: quoteString(s.Value)}
		if s.Name == "readonly" {
			readonly = &v
			continue
		}
		values = append(values, v)
	}
	if readonly != nil {
		values = append(values, *readonly)
	}
	if len(values) > 0 {
		out = append(out, "SET "+renderSettings(values))
	}
	return append(out, "SET profile = "+quoteString(r.Name))
}

// canReadSystem reports whether the role may read table of database db (system or
// information_schema, any case).
func (r *Role) canReadSystem(db, table string) bool {
	if r.systemAll {
		return true
	}
	db = strings.ToLower(db)
	return r.systemTables[db+".*"] || (db == "system" && r.systemTables["system."+table])
}

// constraint is the profile's bounds on setting name, if any.
func (r *Role) constraint(name string) (chdb.ProfileSetting, bool) {
	if r == nil {
		return chdb.ProfileSetting{}, false
	}
	for _, s := range r.Profile {
		if strings.EqualFold(s.Name, name) && (s.Const || s.Min != "" || s.Max != "") {
			return s, true
		}
	}
	return chdb.ProfileSetting{}, false
}

// ErrRoles reports role files that cannot be used.
var ErrRoles = errors.New("role files")

var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// LoadRoles reads every *.sql file of dir, with {db} standing for database. A file holds
// statements of these forms only (those of schemas/clickhouse/roles):
//
//	CREATE ROLE [IF NOT EXISTS | OR REPLACE] name
//	CREATE SETTINGS PROFILE [IF NOT EXISTS | OR REPLACE] name SETTINGS k = v [MIN a] [MAX b] [CONST], … TO role
//	GRANT privileges ON target TO role [WITH GRANT OPTION]
//	REVOKE privileges ON target FROM role
func LoadRoles(dir, database string) (Roles, error) {
	if !plainName.MatchString(database) {
		return nil, fmt.Errorf("%w: database %q is not a plain identifier", ErrRoles, database)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRoles, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no *.sql file in %s (the roles are schemas/clickhouse/roles)", ErrRoles, dir)
	}
	sort.Strings(files)
	rs := Roles{}
	var later []string // statements naming a role, read once every role is known
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRoles, err)
		}
		stmts, err := splitRoleFile(strings.ReplaceAll(string(b), "{db}", quoteIdent(database)))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrRoles, f, err)
		}
		for _, st := range stmts {
			if name, ok := createRole(st); ok {
				if rs[name] == nil {
					rs[name] = &Role{Name: name, systemTables: map[string]bool{}}
				}
				continue
			}
			later = append(later, f+"\x00"+st)
		}
	}
	for _, l := range later {
		f, st, _ := strings.Cut(l, "\x00")
		if err := rs.apply(st); err != nil {
			return nil, fmt.Errorf("%w: %s: %q: %v", ErrRoles, filepath.Base(f), firstWords(st), err)
		}
	}
	return rs, nil
}

// splitRoleFile splits a file into its statements (top-level semicolons), comments dropped.
func splitRoleFile(sql string) ([]string, error) {
	toks, err := lex(sql)
	if err != nil {
		return nil, err
	}
	var out []string
	start := -1
	for _, t := range toks {
		if t.kind == tokPunct && sql[t.start] == ';' && t.depth == 0 {
			if start >= 0 {
				out = append(out, sql[start:t.start])
			}
			start = -1
			continue
		}
		if start < 0 {
			start = t.start
		}
	}
	if start >= 0 {
		return nil, errors.New("the last statement does not end with ;")
	}
	return out, nil
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 6 {
		f = f[:6]
	}
	return strings.Join(f, " ")
}

// createRole reads CREATE ROLE [IF NOT EXISTS | OR REPLACE] name.
func createRole(st string) (string, bool) {
	w := strings.Fields(st)
	if len(w) < 3 || !strings.EqualFold(w[0], "CREATE") || !strings.EqualFold(w[1], "ROLE") {
		return "", false
	}
	w = skipCreateMode(w[2:])
	if len(w) != 1 || !plainName.MatchString(w[0]) {
		return "", false
	}
	return w[0], true
}

func skipCreateMode(w []string) []string {
	switch {
	case len(w) > 3 && strings.EqualFold(w[0], "IF") && strings.EqualFold(w[1], "NOT") && strings.EqualFold(w[2], "EXISTS"):
		return w[3:]
	case len(w) > 2 && strings.EqualFold(w[0], "OR") && strings.EqualFold(w[1], "REPLACE"):
		return w[2:]
	}
	return w
}

// apply adds a profile, grant or revoke statement to its role.
func (rs Roles) apply(st string) error {
	toks, err := lex(st)
	if err != nil {
		return err
	}
	switch {
	case len(toks) > 3 && toks[0].is(st, "CREATE") && toks[1].is(st, "SETTINGS") && toks[2].is(st, "PROFILE"):
		return rs.profile(st, toks[3:])
	case len(toks) > 0 && toks[0].is(st, "GRANT"):
		return rs.grant(st, toks, "TO")
	case len(toks) > 0 && toks[0].is(st, "REVOKE"):
		return rs.grant(st, toks, "FROM")
	}
	return errors.New("not CREATE ROLE, CREATE SETTINGS PROFILE, GRANT or REVOKE")
}

// grant records GRANT … TO role [WITH GRANT OPTION] (or REVOKE … FROM role) on its role.
func (rs Roles) grant(st string, toks []token, kw string) error {
	at := -1
	for i := len(toks) - 2; i > 0; i-- {
		if toks[i].depth == 0 && toks[i].is(st, kw) {
			at = i
			break
		}
	}
	if at < 0 {
		return fmt.Errorf("no %s role", kw)
	}
	name := unquoteIdent(st, toks[at+1])
	r, ok := rs[name]
	if !ok {
		return fmt.Errorf("role %s is not created by a CREATE ROLE of these files", name)
	}
	rest := ""
	if at+2 < len(toks) {
		rest = " " + st[toks[at+2].start:]
	}
	r.Grants = append(r.Grants, strings.TrimSpace(st[:toks[at].start])+rest)
	on := -1
	for i := 1; i < at; i++ {
		if toks[i].is(st, "ON") {
			on = i
			break
		}
	}
	if on < 0 {
		return errors.New("no ON target")
	}
	selects := false
	for _, t := range toks[1:on] {
		selects = selects || t.is(st, "SELECT") || t.is(st, "ALL")
	}
	if !toks[0].is(st, "GRANT") {
		return nil
	}
	if !selects {
		return nil
	}
	var target strings.Builder
	for _, t := range toks[on+1 : at] {
		target.WriteString(unquoteIdent(st, t))
	}
	db, table, _ := strings.Cut(target.String(), ".")
	r.anyDatabase = r.anyDatabase || db == "*"
	switch {
	case db == "*" || strings.EqualFold(db, "system") && table == "*":
		r.systemAll = true
	case strings.EqualFold(db, "system"):
		r.systemTables["system."+table] = true
	case strings.EqualFold(db, "information_schema") && table == "*":
		r.systemTables["information_schema.*"] = true
	}
	return nil
}

// profile records CREATE SETTINGS PROFILE … SETTINGS k = v [MIN a] [MAX b] [CONST], … TO role.
func (rs Roles) profile(st string, toks []token) error {
	i := 0
	for i < len(toks) && !toks[i].is(st, "SETTINGS") {
		i++
	}
	to := len(toks) - 2
	if i >= len(toks) || to <= i || !toks[to].is(st, "TO") {
		return errors.New("expected SETTINGS … TO role")
	}
	r, ok := rs[unquoteIdent(st, toks[to+1])]
	if !ok {
		return fmt.Errorf("role %s is not created by a CREATE ROLE of these files", toks[to+1].text(st))
	}
	var settings []chdb.ProfileSetting
	for _, item := range splitTop(st, toks[i+1:to]) {
		if len(item) < 3 || item[0].kind != tokWord || !plainName.MatchString(item[0].text(st)) || item[1].text(st) != "=" {
			return errors.New("a setting is not name = value")
		}
		s := chdb.ProfileSetting{Name: item[0].text(st), Value: literal(st, item[2])}
		for j := 3; j < len(item); j++ {
			switch {
			case item[j].is(st, "MIN") && j+1 < len(item):
				j++
				s.Min = literal(st, item[j])
			case item[j].is(st, "MAX") && j+1 < len(item):
				j++
				s.Max = literal(st, item[j])
			case item[j].is(st, "CONST"), item[j].is(st, "READONLY"):
				s.Const = true
			default:
				return fmt.Errorf("setting %s: unexpected %s", s.Name, item[j].text(st))
			}
		}
		if s.Name == "readonly" && s.Value != "0" {
			r.ReadOnly = true
		}
		settings = append(settings, s)
	}
	if len(settings) == 0 {
		return errors.New("a profile without settings")
	}
	r.Profile = settings
	return nil
}

// splitTop splits tokens at top-level commas.
func splitTop(sql string, toks []token) [][]token {
	var out [][]token
	var cur []token
	for _, t := range toks {
		if t.kind == tokPunct && sql[t.start] == ',' && t.depth == toks[0].depth {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// literal is a number or string literal's value.
func literal(sql string, t token) string {
	s := t.text(sql)
	if t.kind == tokString {
		if strings.HasPrefix(s, leftSingleQuote) || strings.HasPrefix(s, "$") {
			return s // a Unicode-quoted string or a heredoc: not a setting's value in the files
		}
		return strings.NewReplacer(`\'`, `'`, `''`, `'`, `\\`, `\`).Replace(s[1 : len(s)-1])
	}
	return s
}

// RolesDir is where the role files are, relative to the repository root.
const RolesDir = "schemas/clickhouse/roles"

// FindRolesDir looks for RolesDir in the working directory and its parents.
func FindRolesDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, RolesDir)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no %s above the working directory: give -roles", ErrRoles, RolesDir)
		}
		dir = parent
	}
}

// OpenEngine opens the engine on cfg.DataDir with sessions connections, configured with
// cfg.Roles (the configuration is written into DataDir/chserver), for New. A config.xml in
// the working directory, which chDB reads by itself without a configuration of its own (as
// clickhouse-local does: macros, remote_servers, zookeeper), is merged over it.
func OpenEngine(libPath string, cfg Config, sessions int) (*chdb.Engine, error) {
	ec := cfg.Roles.Engine()
	if st, err := os.Stat("config.xml"); err == nil && st.Mode().IsRegular() {
		ec.Merge = "config.xml"
	}
	path, err := chdb.WriteConfig(filepath.Join(cfg.DataDir, "chserver"), cfg.DataDir, ec)
	if err != nil {
		return nil, err
	}
	return chdb.Open(libPath, cfg.DataDir, sessions, "--config-file="+path)
}
