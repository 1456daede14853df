package ci

import (
	"strings"
	"testing"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestDetect(t *testing.T) {
	f := func(name string, getenv func(string) string, want Info, version, id string) {
		t.Helper()
		got := Detect(getenv)
		if got != want {
			t.Fatalf("%s: got %+v; want %+v", name, got, want)
		}
		if v := got.Version(); v != version {
			t.Fatalf("%s: Version got %q; want %q", name, v, version)
		}
		if d := got.DeployID("api", "prod"); d != id {
			t.Fatalf("%s: DeployID got %q; want %q", name, d, id)
		}
	}
	f("github tag", env("GITHUB_ACTIONS", "true", "GITHUB_SHA", "9fceb02d0ae598e95dc970b74767f19372d61af8", "GITHUB_ACTOR", "octocat",
		"GITHUB_SERVER_URL", "https://github.com", "GITHUB_REPOSITORY", "acme/api", "GITHUB_RUN_ID", "123456", "GITHUB_RUN_ATTEMPT", "2",
		"GITHUB_REF_NAME", "v1.4.2", "GITHUB_REF_TYPE", "tag", "USER", "runner"),
		Info{Provider: "github", RunKey: "gh-123456-2", Commit: "9fceb02d0ae598e95dc970b74767f19372d61af8", Who: "octocat",
			Link: "https://github.com/acme/api/actions/runs/123456", Ref: "v1.4.2", Tag: "v1.4.2"},
		"v1.4.2", "gh-123456-2-api-prod")
	f("github branch", env("GITHUB_ACTIONS", "true", "GITHUB_SHA", "9fceb02d0ae598e9", "GITHUB_RUN_ID", "7", "GITHUB_REF_NAME", "main", "GITHUB_REF_TYPE", "branch"),
		Info{Provider: "github", RunKey: "gh-7-1", Commit: "9fceb02d0ae598e9", Ref: "main"},
		"main@9fceb02d0ae5", "gh-7-1-api-prod")
	f("gitlab", env("GITLAB_CI", "true", "CI_COMMIT_SHA", "abc", "GITLAB_USER_LOGIN", "alice", "CI_PIPELINE_URL", "https://gitlab.example.com/g/p/-/pipelines/99",
		"CI_COMMIT_REF_NAME", "feature/x", "CI_PIPELINE_ID", "99", "CI_JOB_ID", "1001", "CI_ENVIRONMENT_NAME", "staging", "CI_COMMIT_TITLE", "Fix it"),
		Info{Provider: "gitlab", RunKey: "gl-99-1001", Commit: "abc", Who: "alice", Link: "https://gitlab.example.com/g/p/-/pipelines/99",
			Ref: "feature/x", Env: "staging", Message: "Fix it"},
		"feature/x@abc", "gl-99-1001-api-prod")
	f("jenkins", env("JENKINS_URL", "https://jenkins/", "GIT_COMMIT", "def", "BUILD_URL", "https://jenkins/job/api/42/", "BUILD_TAG", "jenkins-folder/api-42",
		"GIT_BRANCH", "origin/main", "USER", "jenkins"),
		Info{Provider: "jenkins", RunKey: "jk-jenkins-folder/api-42", Commit: "def", Who: "jenkins", Link: "https://jenkins/job/api/42/", Ref: "main"},
		"main@def", "jk-jenkins-folder_api-42-api-prod")
	f("no CI", env("USER", "bob"), Info{Who: "bob"}, "", "")
	f("nothing", env(), Info{}, "", "")
}

func TestSanitizeID(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := SanitizeID(in); got != want {
			t.Fatalf("SanitizeID(%q): got %q; want %q", in, got, want)
		}
	}
	f("gh-1-api", "gh-1-api")
	f("a b/c", "a_b_c")
	long := strings.Repeat("x", 200)
	got := SanitizeID(long)
	if len(got) != 128 || got == SanitizeID(long+"y") {
		t.Fatalf("long id: got %q (len %d); want 128 bytes and distinct per input", got, len(got))
	}
}
