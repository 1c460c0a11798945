//! Unit tests of the chart source.

use super::*;

use std::collections::VecDeque;

use super::canvas::text_width;
use super::samples::parse_line;
use super::stdin::read_lines;
use super::ticks::{clock, fmt_latest, fmt_time, nice_ticks, TickFormat};

#[tokio::test]
async fn stdin_lines_from_the_far_future_are_skipped() {
    let chart = Chart::new(ChartOptions::default());
    let hub = Hub::new("t");
    let token = CancellationToken::new();
    let input = b"load=1\nt=10000000000 load=5\nload=2\n";
    let lines = read_lines(&input[..], &chart, &hub, &token).await.unwrap();
    assert_eq!(lines, 3);
    // The future line was skipped; the one after it still counts.
    assert_eq!(chart.counts(), (1, 2));
    let data = lock(&chart.shared.data);
    let newest = data.newest.unwrap();
    let now = unix_seconds(SystemTime::now()).unwrap();
    assert!(newest <= now + 1.0, "newest sample at {newest}, now {now}");
}

#[test]
fn options_parse_or_say_why_not() {
    let mut o = ChartOptions::default();
    for (k, v) in [
        ("title", "CPU"),
        ("window", "30"),
        ("ymin", "0"),
        ("ymax", "1"),
        ("size", "640x360"),
        ("theme", "light"),
        ("style", "area"),
        ("colors", "ff0000,#0f0"),
        ("fps", "5"),
    ] {
        o.set(k, Some(v)).unwrap();
    }
    assert_eq!(
        o,
        ChartOptions {
            title: Some("CPU".into()),
            window: Duration::from_secs(30),
            y_min: Some(0.0),
            y_max: Some(1.0),
            width: 640,
            height: 360,
            theme: Theme::Light,
            style: Style::Area,
            colors: vec![[255, 0, 0], [0, 255, 0]],
            max_fps: 5.0,
        }
    );
    for (k, v, says) in [
        ("size", Some("800"), "WIDTHxHEIGHT"),
        ("size", Some("99999x1"), "WIDTHxHEIGHT"),
        ("window", Some("-1"), "seconds"),
        ("ymin", Some("low"), "not a number"),
        ("theme", Some("blue"), "dark or light"),
        ("colors", Some("red"), "hex"),
        ("fps", Some("0"), "frames"),
        ("title", None, "needs a value"),
        ("bogus", Some("1"), "unknown option"),
    ] {
        let err = ChartOptions::default().set(k, v).unwrap_err();
        assert!(err.contains(says), "{k}: {err}");
    }
    let mut o = ChartOptions::default();
    o.set("ymin", Some("5")).unwrap();
    o.set("ymax", Some("1")).unwrap();
    assert!(o.validate().unwrap_err().contains("below"));
}

#[test]
fn lines_parse_and_bad_fields_are_named() {
    assert_eq!(
        parse_line("load=0.42 temp=61.5, t=1700000000").unwrap(),
        Some(Sample {
            t: Some(1_700_000_000.0),
            values: vec![("load".into(), 0.42), ("temp".into(), 61.5)],
        })
    );
    assert_eq!(parse_line("  # comment").unwrap(), None);
    assert_eq!(parse_line("").unwrap(), None);
    for (line, says) in [
        (
            "load=0.4 temp=hot",
            "field \"temp\": \"hot\" is not a number",
        ),
        ("load=NaN", "field \"load\""),
        ("load=", "field \"load\""),
        ("free", "\"free\" is not name=value"),
        ("t=1", "no values"),
        ("t=1700000000000 x=1", "milliseconds"),
        ("t=soon x=1", "field \"t\""),
        ("=1", "series name"),
    ] {
        let err = parse_line(line).unwrap_err().to_string();
        assert!(err.contains(says), "{line}: {err}");
    }
    let err = parse_lines("a=1\n\nb=x\n").unwrap_err().to_string();
    assert_eq!(err, "line 3: field \"b\": \"x\" is not a number");
}

#[test]
fn json_parses_and_bad_fields_are_named() {
    let s = parse_json(br#"{"load": 0.42, "temp": 61, "t": 1700000000.5}"#).unwrap();
    assert_eq!(s[0].t, Some(1_700_000_000.5));
    assert_eq!(s[0].values.len(), 2);
    assert_eq!(parse_json(br#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
    for (body, says) in [
        (
            &br#"{"load": "0.4"}"#[..],
            "field \"load\": \"0.4\" is not a number",
        ),
        (br#"{"load": null}"#, "field \"load\": null"),
        (br#"{"load": [1]}"#, "field \"load\""),
        (br#"{}"#, "no values"),
        (br#"[{"a":1},{"b":true}]"#, "item 2: field \"b\""),
        (br#"{"t": "now", "a": 1}"#, "field \"t\""),
        (br#"42"#, "expected an object"),
        (br#"{"a": 1"#, "bad JSON"),
    ] {
        let err = parse_json(body).unwrap_err().to_string();
        assert!(
            err.contains(says),
            "{}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn memory_is_bounded_by_window_series_and_points() {
    let chart = Chart::new(ChartOptions {
        window: Duration::from_secs(10),
        ..ChartOptions::default()
    });
    let t0 = 1_700_000_000.0;
    for i in 0..100 {
        chart
            .push_text(&format!("t={} a={i}", t0 + f64::from(i)))
            .unwrap();
    }
    // Only the last 10 s (11 samples, both ends included) are kept.
    assert_eq!(chart.counts(), (1, 11));
    // A sample too old for the window is ignored; a late one within it
    // is put in order.
    chart.push_text(&format!("t={t0} a=1")).unwrap();
    chart.push_text(&format!("t={} a=-1", t0 + 95.5)).unwrap();
    assert_eq!(chart.counts(), (1, 12));
    let snap = chart.snapshot();
    let times: Vec<f64> = snap.series[0].points.iter().map(|p| p.0).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(*times.last().unwrap(), 0.0);

    // A series that leaves the window disappears and frees its place.
    chart.push_text(&format!("t={} b=1", t0 + 200.0)).unwrap();
    assert_eq!(chart.counts(), (1, 1));

    // At most MAX_SERIES names; the one too many is refused whole.
    let names: Vec<String> = (0..MAX_SERIES).map(|i| format!("s{i}=1")).collect();
    let chart = Chart::new(ChartOptions::default());
    chart.push_text(&names.join(" ")).unwrap();
    let err = chart.push_text("s0=2 extra=1").unwrap_err();
    assert_eq!(
        err,
        SampleError::TooManySeries {
            field: "extra".into()
        }
    );
    assert_eq!(chart.counts(), (MAX_SERIES, MAX_SERIES));

    // A batch in reverse time order is taken whole and put in order.
    let chart = Chart::new(ChartOptions::default());
    let reversed: String = (0..5000)
        .rev()
        .map(|i| format!("t={} x={i}\n", t0 + f64::from(i) * 0.01))
        .collect();
    assert_eq!(chart.push_text(&reversed).unwrap(), 5000);
    let snap = chart.snapshot();
    assert_eq!(chart.counts(), (1, 5000));
    assert!(snap.series[0].points.windows(2).all(|w| w[0].0 <= w[1].0));

    // At most MAX_POINTS per series, whatever the rate.
    let chart = Chart::new(ChartOptions::default());
    let burst: String = (0..MAX_POINTS + 500)
        .map(|i| format!("t={} x={i}\n", t0 + i as f64 * 0.001))
        .collect();
    chart.push_text(&burst).unwrap();
    assert_eq!(chart.counts(), (1, MAX_POINTS));
}

#[test]
fn thinning_keeps_extremes_and_bounds_points() {
    let newest = 100.0;
    let points: VecDeque<(f64, f64)> = (0..100_000)
        .map(|i| {
            let t = i as f64 * 0.001;
            (t, if i == 50_000 { 1000.0 } else { (t * 7.0).sin() })
        })
        .collect();
    let out = thin(&points, newest, 100.0, 800);
    assert!(out.len() <= 4 * 800, "{}", out.len());
    assert!(out.iter().any(|p| p.1 == 1000.0), "the spike is kept");
    assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn ticks_are_round_and_labels_read_well() {
    assert_eq!(
        nice_ticks(-60.0, 0.0, 7).0,
        [-60.0, -50.0, -40.0, -30.0, -20.0, -10.0, 0.0]
    );
    let (ticks, step) = nice_ticks(0.03, 0.97, 5);
    assert_eq!(step, 0.2);
    assert_eq!(ticks.len(), 4); // 0.2 0.4 0.6 0.8
    let f = TickFormat::new(1.0, step);
    assert_eq!(
        ticks.iter().map(|&v| f.fmt(v)).collect::<Vec<_>>(),
        ["0.2", "0.4", "0.6", "0.8"]
    );
    assert_eq!(TickFormat::new(1.0, 0.05).fmt(0.25), "0.25");
    assert_eq!(TickFormat::new(80.0, 20.0).fmt(60.0), "60");
    assert_eq!(TickFormat::new(1.0, 0.2).fmt(-0.0000001), "0");
    assert_eq!(TickFormat::new(3e6, 5e5).fmt(2_500_000.0), "2.5M");
    assert_eq!(TickFormat::new(20_000.0, 5_000.0).fmt(15_000.0), "15k");
    assert_eq!(nice_ticks(5.0, 5.0, 5).0, [5.0]);
    assert_eq!(fmt_time(-30.0, "s"), "-30s");
    assert_eq!(fmt_time(0.0, "m"), "0m");
    assert_eq!(fmt_latest(61.5), "61.5");
    assert_eq!(fmt_latest(0.123456), "0.1235");
    assert_eq!(fmt_latest(1234.56), "1235");
    assert_eq!(fmt_latest(2_500_000.0), "2.5M");
    assert_eq!(clock(1_700_000_000.0), "22:13:20 UTC");
    assert!(text_width("load", 13.0) > 20.0);
}

#[test]
fn renders_a_jpeg_of_the_configured_size() {
    for style in [Style::Line, Style::Area] {
        for theme in [Theme::Dark, Theme::Light] {
            let chart = Chart::new(ChartOptions {
                width: 640,
                height: 360,
                style,
                theme,
                title: Some("Test".into()),
                ..ChartOptions::default()
            });
            let empty = chart.render_jpeg().unwrap();
            for i in 0..50 {
                let t = 1_700_000_000.0 + f64::from(i);
                chart
                    .push_text(&format!("t={t} a={} b={}", f64::from(i).sin(), i))
                    .unwrap();
            }
            let jpeg = chart.render_jpeg().unwrap();
            assert_ne!(empty, jpeg);
            let frame = Frame::from_jpeg(jpeg.clone()).unwrap();
            assert_eq!((frame.width(), frame.height()), (640, 360));
            let pixels = zune_jpeg::JpegDecoder::new(&jpeg).decode().unwrap();
            assert_eq!(pixels.len(), 640 * 360 * 3);
        }
    }
}
