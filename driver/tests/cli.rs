//! What a new user meets, through the real `ifp` binary: argument errors with clap's detail
//! in one line, help grouped by algorithm and backend, one readable line for external errors
//! (S3, Lambda under AWS's emulator, Redis), outputs claimed before any work and created with
//! the umask's permissions, a summary whose parts add up to its total, progress lines that
//! show the result JSON's figures.

use ifp_testkit::*;

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

/// The failure contract: non-zero exit, exactly one line of at most 300 characters on stderr
/// containing every one of `expected`, no panic. Returns the line.
fn one_line_failure(o: &Output, what: &str, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{what} succeeded; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line, got: {stderr}");
    assert!(lines[0].chars().count() <= 300, "{what}: {} characters: {}", lines[0].chars().count(), lines[0]);
    for e in expected {
        assert!(lines[0].contains(e), "{what}: {:?} does not contain {e:?}", lines[0]);
    }
    lines[0].to_string()
}

#[test]
fn argument_errors_keep_clap_s_detail_in_one_line() {
    let o = ifp(&["gen", "kmeans"]);
    one_line_failure(
        &o,
        "gen without arguments",
        &["required arguments", "--rows", "--cols", "--out", "ifp gen --help"],
    );
    let o = ifp(&["run", "kmeans", "--dat", "x.npy"]);
    one_line_failure(&o, "a typo", &["'--dat'", "similar argument exists: '--data'"]);
    let o = ifp(&["run", "kmeans", "--k", "-1"]);
    one_line_failure(&o, "a negative k", &["invalid value '-1' for '--k <K>'", "expected a whole number"]);
    let o = ifp(&["gen", "kmeans", "--rows", "0", "--cols", "2", "--out", "x.npy"]);
    one_line_failure(&o, "zero rows", &["invalid value '0' for '--rows <ROWS>'"]);
    let o = ifp(&["run", "kmeans", "--init", "best"]);
    one_line_failure(&o, "a value not in the list", &["'best'", "first, random, kmeans++"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit with 2");
}

#[test]
fn help_groups_the_flags_and_describes_every_one() {
    let help = String::from_utf8_lossy(&ifp_ok(&["run", "kmeans", "--help"]).stdout).into_owned();
    for heading in ["K-means (kmeans):", "Logistic regression (logreg):", "Plugins:", "Lambda (--backend lambda):"] {
        assert!(help.contains(heading), "`ifp run --help` lacks the heading {heading:?}");
    }
    // k-means flags under the k-means heading, the logistic-regression ones under theirs.
    let at = |s: &str| help.find(s).unwrap_or_else(|| panic!("{s} missing from the help"));
    assert!(at("K-means (kmeans):") < at("--init <INIT>") && at("--init <INIT>") < at("Logistic regression (logreg):"));
    assert!(at("Logistic regression (logreg):") < at("--learning-rate"));
    // Short help: each flag's description follows it on its line, or on the next when long.
    for cmd in ["gen", "run", "sweep", "bench"] {
        let short = String::from_utf8_lossy(&ifp_ok(&[cmd, "-h"]).stdout).into_owned();
        let lines: Vec<&str> = short.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            if !(t.starts_with("--") || t.starts_with("-h") || t.starts_with("-v")) {
                continue;
            }
            let same_line =
                t.find(">  ").map(|i| i + 1).or_else(|| t.find("  ")).is_some_and(|at| !t[at..].trim().is_empty());
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            let next_line = !next.is_empty() && !next.starts_with('-') && !next.ends_with(':');
            assert!(same_line || next_line, "ifp {cmd}: flag without a description: {t:?}");
        }
    }
}

#[test]
fn external_errors_are_one_readable_line() {
    let d = tempfile::tempdir().unwrap();
    let blobs = fixture("blobs.npy");
    let data = blobs.to_str().unwrap();
    // Redis without a scheme.
    let o = ifp(&["run", "kmeans", "--data", data, "--redis", "127.0.0.1:6411"]);
    one_line_failure(&o, "--redis without scheme", &["127.0.0.1:6411", "redis://127.0.0.1:6411"]);
    // S3: nothing listening at the endpoint.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let o = ifp_aws(&["run", "kmeans", "--data", "s3://b/x.npy", "--s3-endpoint", &closed]);
    one_line_failure(&o, "S3 endpoint closed", &["s3://b/x.npy", "cannot connect", "Connection refused"]);
    // S3: no credentials anywhere.
    let o = Command::new(ifp_bin())
        .args(["run", "kmeans", "--data", "s3://b/x.npy", "--s3-endpoint", &closed])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", d.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    one_line_failure(&o, "no credentials", &["s3://b/x.npy", "no usable AWS credentials", "AWS_ACCESS_KEY_ID"]);
    // Lambda: a function name the endpoint does not serve (AWS's emulator serves `function`).
    let emulator = Emulator::start(&[]);
    let o = ifp_aws(&[
        "run",
        "kmeans",
        "--data",
        data,
        "--backend",
        "lambda",
        "--function",
        "no-such-function",
        "--lambda-endpoint",
        &emulator.endpoint(),
    ]);
    one_line_failure(&o, "wrong --function", &["'no-such-function'", "HTTP 404", "--function"]);
    // A CSV with a header line.
    let csv = d.path().join("h.csv");
    std::fs::write(&csv, "x,y\n1,2\n3,4\n").unwrap();
    let o = ifp(&["run", "kmeans", "--k", "1", "--data", csv.to_str().unwrap()]);
    one_line_failure(&o, "CSV header", &["row 1 column 1: 'x' is not a number", "add --header"]);
    // The same file with --header runs; a header that is not the only problem gets no header hint.
    let o = ifp(&["run", "kmeans", "--k", "1", "--quiet", "--data", csv.to_str().unwrap(), "--header"]);
    assert!(o.status.success(), "--header: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&csv, "x,y\n1,2\nz,4\n").unwrap();
    let o = ifp(&["run", "kmeans", "--k", "1", "--data", csv.to_str().unwrap(), "--header"]);
    let line = one_line_failure(&o, "bad cell after a header", &["h.csv row 2 column 1: 'z' is not a number"]);
    assert!(!line.contains("--header"), "{line}");
    // Another delimiter than the file's: the whole row is one cell.
    std::fs::write(&csv, "1;2\n3;4\n").unwrap();
    let o = ifp(&["run", "kmeans", "--k", "1", "--data", csv.to_str().unwrap()]);
    one_line_failure(&o, "wrong delimiter", &["'1;2' is not a number", "--delimiter"]);
    let o = ifp(&["run", "kmeans", "--k", "1", "--data", csv.to_str().unwrap(), "--delimiter", "ab"]);
    one_line_failure(&o, "--delimiter ab", &["--delimiter", "\"ab\""]);
    let o = ifp(&["run", "kmeans", "--k", "1", "--data", data, "--header"]);
    one_line_failure(&o, "--header on .npy", &["--header and --delimiter apply to CSV data", "blobs.npy"]);
    assert!(!d.path().join("out.json").exists());
}

#[test]
fn lambda_endpoints_take_the_comma_form() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(None);
    let emulators: Vec<Emulator> = (0..2).map(|_| Emulator::start(&[])).collect();
    let list = format!("{},{}", emulators[0].endpoint(), emulators[1].endpoint());
    let (blobs, url) = (fixture("blobs.npy"), redis.url());
    let out = d.path().join("r.json");
    let args = [
        "run",
        "kmeans",
        "--k",
        "4",
        "--init",
        "first",
        "--functions",
        "2",
        "--inner",
        "1",
        "--data",
        blobs.to_str().unwrap(),
        "--backend",
        "lambda",
        "--function",
        "function",
        "--redis",
        &url,
        "--lambda-endpoint",
        &list,
        "--out",
        out.to_str().unwrap(),
    ];
    let o = ifp_aws(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(load_json(&out)["lambda"]["invocations"].as_array().unwrap().len(), 2);
}

#[test]
fn outputs_are_claimed_before_any_work_and_follow_the_umask() {
    let d = tempfile::tempdir().unwrap();
    // A path under a regular file can never be created. The data has a bad cell: had the
    // data been read first, the error would be about the data.
    let file = d.path().join("file");
    std::fs::write(&file, "").unwrap();
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "1,2\n3,x\n").unwrap();
    let under_file = file.join("r.json");
    for flag in ["--out", "--labels-out"] {
        let target = if flag == "--out" { under_file.clone() } else { file.join("labels.csv") };
        let o = ifp(&["run", "kmeans", "--k", "1", "--data", bad.to_str().unwrap(), flag, target.to_str().unwrap()]);
        one_line_failure(&o, flag, &[flag, "cannot create a file in", "Not a directory"]);
    }
    // With a good data set and many iterations: the failure comes before the first one.
    let o = ifp(&["run", "kmeans", "--max-iter", "50", "--init", "first", "--out", under_file.to_str().unwrap()]);
    one_line_failure(&o, "unwritable --out", &["--out"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("iteration"));

    // The files get 0666 less the umask, as `touch` would make them.
    for (umask, mode) in [("022", 0o644), ("027", 0o640)] {
        let out = d.path().join(format!("r-{umask}.json"));
        let labels = d.path().join(format!("l-{umask}.csv"));
        let cmd = format!(
            "umask {umask} && exec \"$0\" run kmeans --max-iter 2 --quiet --out \"$1\" --labels-out \"$2\" --data \"$3\" --k 2"
        );
        let o = Command::new("sh")
            .args(["-c", &cmd, ifp_bin().to_str().unwrap(), out.to_str().unwrap(), labels.to_str().unwrap()])
            .arg(fixture("blobs.npy"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for p in [&out, &labels] {
            let got = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "{} under umask {umask}: {got:o}", p.display());
        }
    }
}

/// `time: T s = kernel a + data b + ...` from the summary: (T, the parts).
fn summary_time(stdout: &str) -> (f64, Vec<(String, f64)>) {
    let line = stdout.lines().find(|l| l.starts_with("time: ")).expect("a time line in the summary");
    let (total, parts) = line["time: ".len()..].split_once(" s = ").expect("time: T s = ...");
    let parts = parts
        .split(" + ")
        .map(|p| {
            let (name, v) = p.rsplit_once(' ').unwrap();
            (name.to_string(), v.parse::<f64>().unwrap())
        })
        .collect();
    (total.parse().unwrap(), parts)
}

#[test]
fn the_summary_accounts_for_the_whole_time_and_progress_shows_the_json_figures() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r.json");
    let o = ifp_ok(&[
        "run",
        "kmeans",
        "--functions",
        "2",
        "--init",
        "first",
        "--max-iter",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let (total, parts) = summary_time(&stdout);
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["kernel", "data", "init", "load", "compute", "sync", "start-up and other", "write"]);
    // Nine numbers printed to 3 decimals: the sum is within 9 half-units of the last digit.
    let sum: f64 = parts.iter().map(|(_, v)| v).sum();
    assert!((sum - total).abs() <= 9.0 * 0.0005 + 1e-9, "parts {sum} vs total {total}: {stdout}");
    let r = load_json(&out);
    let phases = r["timing"]["phases"].as_object().unwrap();
    let json_sum: f64 = phases.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((json_sum - r["timing"]["wall_s"].as_f64().unwrap()).abs() < 1e-9);
    assert!((phases["init_s"].as_f64().unwrap() - r["timing"]["init_s"].as_f64().unwrap()).abs() < 1e-12);
    // Per-iteration sync and compute of the summary are the JSON's, summed.
    let its = r["timing"]["iterations"].as_array().unwrap();
    let sum_of = |k: &str| its.iter().map(|i| i[k].as_f64().unwrap()).sum::<f64>();
    assert!((sum_of("sync_s") - phases["sync_s"].as_f64().unwrap()).abs() < 1e-9);
    assert!((sum_of("compute_s") - phases["compute_s"].as_f64().unwrap()).abs() < 1e-9);
    // Progress lines (stderr is not a terminal here): the same compute and sync as the JSON.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("iteration ")).collect();
    assert_eq!(lines.len(), its.len(), "{stderr}");
    for (line, it) in lines.iter().zip(its) {
        let want = format!(
            "compute {:.2} ms, sync {:.3} ms",
            it["compute_s"].as_f64().unwrap() * 1e3,
            it["sync_s"].as_f64().unwrap() * 1e3
        );
        assert!(line.ends_with(&want), "{line:?} is not the JSON's {want:?}");
    }
}
