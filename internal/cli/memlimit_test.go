package cli

import "testing"

func TestSoftLimit(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "max\n", want: 0},
		{in: "268435456\n", want: 241591910},
		{in: "104857600", want: 94371840},
		{in: "", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "0", wantErr: true},
		{in: "12Mi", wantErr: true},
	} {
		got, err := softLimit(c.in)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("softLimit(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}
