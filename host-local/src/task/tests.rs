//! Tests of the task, the report and their JSON.

use super::*;

fn task() -> FunctionTask {
    serde_json::from_str(
        r#"{"job":"j","worker":0,"workers":1,"data":"d.npy","kernel":"kmeans","params":{"k":8,"init":"first","tol":0.5,"x":true},"max_iter":3}"#,
    )
    .unwrap()
}

/// The CSV layout travels in the task (the delimiter as a character) and is left out
/// when it is the default; a delimiter of more than one character is refused.
#[test]
fn csv_format_round_trips_through_the_task() {
    let mut t = task();
    assert!(!serde_json::to_string(&t).unwrap().contains("csv"));
    t.csv = CsvFormat { header: true, delimiter: b'\t' };
    let json = serde_json::to_string(&t).unwrap();
    assert!(json.contains(r#""csv":{"header":true,"delimiter":"\t"}"#), "{json}");
    assert_eq!(serde_json::from_str::<FunctionTask>(&json).unwrap().csv, t.csv);
    let bad = json.replace(r#""delimiter":"\t""#, r#""delimiter":";;""#);
    let e = serde_json::from_str::<FunctionTask>(&bad).unwrap_err().to_string();
    assert!(e.contains("a CSV delimiter is one ASCII character, got \";;\""), "{e}");
}

#[test]
fn numbers_strings_and_booleans_are_parameters_in_order_and_unknown_fields_are_refused() {
    let t = task();
    assert_eq!(
        t.params,
        vec![
            ("k".into(), "8".into()),
            ("init".into(), "first".into()),
            ("tol".into(), "0.5".into()),
            ("x".into(), "true".into())
        ]
    );
    assert_eq!((t.function, t.functions, t.sync_timeout_s), (0, 1, 60.0));
    let e = serde_json::from_str::<FunctionTask>(
        r#"{"job":"j","function":0,"functions":1,"data":"d","kernel":"k","max_iter":3,"maxiter":4}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown field `maxiter`"), "{e}");
    let e = serde_json::from_str::<FunctionTask>(
        r#"{"job":"j","function":0,"functions":1,"data":"d","kernel":"k","max_iter":3,"params":{"k":[1]}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("parameter 'k' must be a string, a number or a boolean, got [1]"), "{e}");
}

#[test]
fn non_finite_model_values_cross_json_bit_for_bit() {
    let mut t = task();
    let model = vec![1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, f64::MIN_POSITIVE, 0.1 + 0.2];
    t.model = Some(model.clone());
    let text = serde_json::to_string(&t).unwrap();
    assert!(text.contains(r#""model":[1.5,"NaN","inf","-inf",-0.0,"#), "{text}");
    let back: FunctionTask = serde_json::from_str(&text).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(back.model.as_ref().unwrap()), bits(&model));
    let r = FunctionReport { model: model.clone(), ..Default::default() };
    let back: FunctionReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(bits(&back.model), bits(&model));
    let it = IterationReport { loss: f64::NAN, ..Default::default() };
    let back: IterationReport = serde_json::from_str(&serde_json::to_string(&it).unwrap()).unwrap();
    assert!(back.loss.is_nan());
}

#[test]
fn validation_names_the_field_and_the_value() {
    type Case = (fn(&mut FunctionTask), &'static str);
    let cases: [Case; 8] = [
        (|t| t.functions = 0, "functions must be at least 1, got 0"),
        (|t| t.function = 1, "function 1 is out of range for functions = 1"),
        (|t| t.max_iter = 0, "max_iter must be at least 1, got 0"),
        (|t| t.sync_timeout_s = -1.0, "sync_timeout_s must be a positive number of seconds, got -1"),
        (|t| t.inner = Some(0), "inner must be at least 1, got 0"),
        (|t| t.job = "a b".into(), "invalid job id 'a b'"),
        (|t| t.kernel_memory_mb = Some(5000), "kernel memory must be between 1 and 4096 MiB, got 5000"),
        (
            |t| {
                t.model = Some(vec![1.0]);
                t.model_ref = Some(ModelRef::of(&[1.0]));
            },
            "model and model_ref are exclusive",
        ),
    ];
    for (change, want) in cases {
        let mut t = task();
        change(&mut t);
        let e = t.validate().unwrap_err();
        assert_eq!(e.kind, FailureKind::BadInput);
        assert!(e.message.starts_with(want), "{} vs {want}", e.message);
    }
    assert!(task().validate().is_ok());
}

#[test]
fn inner_workers_follow_memory_not_nproc() {
    let cases = [(128, 1), (1769, 1), (2654, 2), (3538, 2), (7076, 4), (10240, 6), (1_000_000, 6)];
    for (mb, inner) in cases {
        assert_eq!(inner_for_memory(mb), inner, "{mb} MB");
    }
}

#[test]
fn a_rejoined_functions_iterations_are_found_by_number() {
    let its = (3..6).map(|iteration| IterationReport { iteration, loss: iteration as f64, ..Default::default() });
    let r = FunctionReport { joined_at: 3, iterations: its.collect(), ..Default::default() };
    assert_eq!(r.iteration(4).map(|i| i.loss), Some(4.0));
    assert!(r.iteration(2).is_none() && r.iteration(6).is_none());
}

#[test]
fn redis_passwords_stay_out_of_debug_output() {
    let mut t = task();
    t.redis = Some(RedisUrl("redis://u:hunter2@host:6379".into()));
    let shown = format!("{t:?}");
    assert!(!shown.contains("hunter2") && shown.contains("u:***@host"), "{shown}");
    assert!(serde_json::to_string(&t).unwrap().contains("hunter2"), "the task itself carries it");
}

#[test]
fn failures_read_as_one_line_and_only_the_store_is_worth_a_retry() {
    let f = FunctionFailure::new(FailureKind::Kernel, Some(2), Some(4), "kernel 'x' failed in step:\n trap");
    assert_eq!(f.to_string(), "function 2 failed during iteration 4: kernel 'x' failed in step: trap");
    assert!(!f.kind.retryable() && FailureKind::StoreUnreachable.retryable());
    for k in [FailureKind::BadInput, FailureKind::Aborted, FailureKind::Host] {
        assert_eq!(FailureKind::from_name(k.name()), Some(k));
    }
}
