package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadSettings_ChangeTracking(t *testing.T) {
	s, err := LoadSettings(getenvOf(map[string]string{EnvTables: "UseDevelopmentStorage=true",
		EnvChangesEnvironment: "https://contoso.crm4.dynamics.com/", EnvChangesPageSize: "5000", EnvChangesStaleAfter: "30m"}))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Changes
	if !c.Configured() || c.Environment != "https://contoso.crm4.dynamics.com" || c.PageSize != 5000 || c.StaleAfter != 30*time.Minute ||
		c.Schedule != "0 */5 * * * *" || c.Table != "ChangeTracking" || c.Parallel != 8 {
		t.Fatalf("changes = %+v", c)
	}
	off, err := LoadSettings(getenvOf(nil))
	if err != nil || off.Changes.Configured() {
		t.Fatalf("without %s: %+v (err %v)", EnvChangesEnvironment, off.Changes, err)
	}
}

func TestLoadSettings_ChangeTrackingProblems(t *testing.T) {
	_, err := LoadSettings(getenvOf(map[string]string{
		EnvChangesEnvironment: "http://contoso.crm4.dynamics.com",
		EnvChangesSchedule:    "*/5 * * * *",
		EnvChangesPageSize:    "6000",
		EnvChangesTable:       "DeliveryJournal",
	}))
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{
		"setting DVROUTER_CHANGES_ENVIRONMENT: \"http://contoso.crm4.dynamics.com\" must be the environment's https URL",
		"setting DVROUTER_CHANGES_SCHEDULE: \"*/5 * * * *\" must be an NCRONTAB expression of six fields",
		"setting DVROUTER_CHANGES_PAGE_SIZE: \"6000\" must be a whole number from 1 to 5000",
		"setting DVROUTER_CHANGES_TABLE: \"DeliveryJournal\" is the failure, breaker or journal table",
		"change tracking keeps its tokens in Table Storage",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors:\n%v\nwant one saying %q", err, want)
		}
	}
}
