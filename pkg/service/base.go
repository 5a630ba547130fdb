package service

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vigie/vigie/pkg/telemetry"
)

// AdminConfig is where the admin server listens.
type AdminConfig struct {
	// Listen is host:port; port 0 picks a free port (tests).
	Listen string `yaml:"listen"`
}

// Base is the configuration every service has. Embed it inline in the service's Config:
//
//	type Config struct {
//		service.Base `yaml:",inline"`
//		...
//	}
//
// so that its keys (admin.listen, log.level, log.format, shutdown_timeout) sit at the top.
type Base struct {
	Admin AdminConfig         `yaml:"admin"`
	Log   telemetry.LogConfig `yaml:"log"`
	// ShutdownTimeout bounds the drain after SIGINT/SIGTERM: past it, the parts still
	// running have their context cancelled.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultBase listens on adminListen (each service has its own port), logs JSON at info and
// drains for at most 30 s.
func DefaultBase(adminListen string) Base {
	return Base{
		Admin:           AdminConfig{Listen: adminListen},
		Log:             telemetry.DefaultLogConfig(),
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate names the bad key.
func (b Base) Validate() error {
	if b.Admin.Listen == "" {
		return errors.New("admin.listen: must be set (host:port)")
	}
	if _, _, err := net.SplitHostPort(b.Admin.Listen); err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	if err := b.Log.Validate(); err != nil {
		return err
	}
	if b.ShutdownTimeout <= 0 {
		return fmt.Errorf("shutdown_timeout: %s must be positive", b.ShutdownTimeout)
	}
	return nil
}

func (b *Base) base() *Base { return b }

// Config is what a service's configuration satisfies: a pointer to a struct that embeds Base
// (which gives it base) and has its own Validate (which should call Base.Validate; Run
// validates Base again in any case).
type Config interface {
	Validate() error
	base() *Base
}
