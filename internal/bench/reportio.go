package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// UnmarshalJSON implements json.Unmarshaler: null (a configuration with
// no successful sample) reads back as NaN, not 0.
func (n *Num) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// ReadJSON reads a report that WriteJSON wrote. The samples' Raw entries
// come back as generic JSON values (maps), not as the result structs.
func ReadJSON(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return &r, nil
}
