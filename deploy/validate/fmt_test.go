package validate

import "fmt"

var fmtSprintf = fmt.Sprintf
