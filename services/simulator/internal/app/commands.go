package app

// The credentials and reference commands: sensor tokens and their hashes, and a generated
// reference data set.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/reference"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/simulator/internal/creds"
)

// CredentialsConfig configures `simulator credentials`.
type CredentialsConfig struct {
	// ReferenceDir holds the reference files; empty for the embedded default.
	ReferenceDir string `yaml:"reference_dir"`
	// CredentialsFile is ingest's credentials file to write (token hashes).
	CredentialsFile string `yaml:"credentials_file"`
	// TokensFile is the simulator's tokens file to write (the tokens, mode 0600).
	TokensFile string `yaml:"tokens_file"`
}

// Validate names the first bad field.
func (c *CredentialsConfig) Validate() error {
	if c.CredentialsFile == "" || c.TokensFile == "" {
		return errors.New("credentials_file, tokens_file: both must be set")
	}
	return nil
}

func runCredentials(args []string) error {
	cfg := &CredentialsConfig{}
	if err := config.Load(cfg, EnvPrefix, args); err != nil {
		return helpOK(err)
	}
	ref, err := loadReference(cfg.ReferenceDir)
	if err != nil {
		return err
	}
	toks, f, err := creds.Generate(ref.Sensors())
	if err != nil {
		return err
	}
	return creds.Write(cfg.CredentialsFile, cfg.TokensFile, toks, f)
}

// ---- reference ----

// ReferenceConfig configures `simulator reference`.
type ReferenceConfig struct {
	// ReferenceDir is the source of facilities, TACs and operators; empty for the default.
	ReferenceDir string `yaml:"reference_dir"`
	// OutDir receives the four files.
	OutDir string `yaml:"out_dir"`
	// Seed and PerFacility are reference.GenerateOptions.
	Seed        uint64 `yaml:"seed"`
	PerFacility int    `yaml:"per_facility"`
}

// Validate names the first bad field.
func (c *ReferenceConfig) Validate() error {
	switch {
	case c.OutDir == "":
		return errors.New("out_dir: must be set")
	case c.PerFacility < 0 || c.PerFacility > 1000:
		return errors.New("per_facility: must be 0 (realistic sizes) to 1000")
	}
	return nil
}

func runReference(args []string) error {
	cfg := &ReferenceConfig{Seed: 1}
	if err := config.Load(cfg, EnvPrefix, args); err != nil {
		return helpOK(err)
	}
	ref, err := loadReference(cfg.ReferenceDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", cfg.OutDir, err)
	}
	for _, name := range []string{reference.FacilitiesFile, reference.TACFile, reference.OperatorsFile} {
		var data []byte
		if cfg.ReferenceDir == "" {
			data, err = refdata.FS.ReadFile(name)
		} else {
			data, err = os.ReadFile(filepath.Join(cfg.ReferenceDir, name))
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(cfg.OutDir, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	sensors := reference.GenerateSensors(ref.Facilities(), reference.GenerateOptions{Seed: cfg.Seed, PerFacility: cfg.PerFacility})
	f, err := os.Create(filepath.Join(cfg.OutDir, reference.SensorsFile))
	if err != nil {
		return fmt.Errorf("create sensors file: %w", err)
	}
	if err := reference.WriteSensorsCSV(f, sensors); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close sensors file: %w", err)
	}
	_, err = reference.LoadDir(cfg.OutDir)
	return err
}

// ---- run ----
