module github.com/vigie/vigie/services/correlator

go 1.26.0

replace (
	github.com/vigie/vigie/pkg => ../../pkg
	github.com/vigie/vigie/schemas => ../../schemas
)

require (
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	github.com/stretchr/testify v1.12.1
	github.com/vigie/vigie/pkg v0.0.0-00010101000000-000000000000
	github.com/vigie/vigie/schemas v0.0.0
	golang.org/x/text v0.44.0
	gopkg.in/yaml.v3 v3.0.1
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
