//! The settings' unit tests: flags, file values and how they merge.

use super::file::line_column;
use super::*;

#[test]
fn stream_args_parse_or_say_why_not() {
    let a: StreamArg = "cam=dir:./img".parse().unwrap();
    assert_eq!(a.name, "cam");
    assert_eq!(a.source, SourceSpec::Dir("./img".into()));
    assert!("cam"
        .parse::<StreamArg>()
        .unwrap_err()
        .contains("NAME=SOURCE"));
    assert!("bad name=demo"
        .parse::<StreamArg>()
        .unwrap_err()
        .contains("invalid stream name"));
    assert!("x=ftp:y"
        .parse::<StreamArg>()
        .unwrap_err()
        .contains("unknown source"));
}

#[test]
fn defaults_and_bad_numbers() {
    let cli = Cli::try_parse_from(["mjpeg-server"]).unwrap();
    let settings = Settings::resolve(&cli).unwrap();
    assert_eq!(settings.listen[0].to_string(), "127.0.0.1:8080");
    assert_eq!(settings.streams.len(), 1);
    assert_eq!(settings.streams[0].source, SourceSpec::Demo);
    assert!(Cli::try_parse_from(["x", "--fps", "0"]).is_err());
    assert!(Cli::try_parse_from(["x", "--fps", "abc"]).is_err());
    assert!(Cli::try_parse_from(["x", "--resend-after", "-1"]).is_err());
    assert_eq!(seconds_or_off(0.0), None);
    assert_eq!(settings.scalars.max_frame_size, 16 << 20);
}

fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    FileConfig::parse(Path::new("t.toml"), text)
}

#[test]
fn file_values_and_flags_merge() {
    let file = parse(
        "listen = \"[::1]:81\"\nfps = 2.5\nmax-frame-size = 1024\nwrite-timeout = 0\n\
         [[stream]]\nname = \"a\"\nsource = \"demo\"\n",
    )
    .unwrap();
    let cli = Cli::try_parse_from(["x", "--write-timeout", "3", "--stream", "b=push"]).unwrap();
    let s = Settings::merge(file, &cli);
    assert_eq!(s.listen, [ListenAddr::Tcp("[::1]:81".parse().unwrap())]);
    assert_eq!(s.scalars.fps, 2.5);
    assert_eq!(s.scalars.write_timeout, 3.0);
    assert_eq!(s.scalars.max_frame_size, 1024);
    let names: Vec<_> = s.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    // Two flags with one name are both kept, to be refused as a duplicate.
    let cli = Cli::try_parse_from(["x", "--stream", "a=push", "--stream", "a=demo"]).unwrap();
    let file = parse("[[stream]]\nname = \"a\"\nsource = \"demo\"\n").unwrap();
    assert_eq!(Settings::merge(file, &cli).streams.len(), 2);
    // allow-create alone means no default demo stream.
    let s = Settings::merge(
        parse("allow-create = true").unwrap(),
        &Cli::try_parse_from(["x"]).unwrap(),
    );
    assert!(s.streams.is_empty());
}

#[test]
fn file_errors_name_line_and_key() {
    let e = parse("\n\nfps = -1\n").unwrap_err().to_string();
    assert!(e.starts_with("t.toml:3:7: key `fps`: "), "{e}");
    let e = parse("[[stream]]\nname = \"a\"\nsource = \"demo\"\nfps = 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.toml:4:1: key `stream.fps`: unknown field"),
        "{e}"
    );
    let e = parse("listen = \"unix:\"").unwrap_err().to_string();
    assert!(e.contains("key `listen`: unix: needs a path"), "{e}");
    let l = parse("listen = [\"unix:/run/x.sock\"]")
        .unwrap()
        .listen
        .unwrap();
    assert_eq!(l.0, [ListenAddr::Unix("/run/x.sock".into())]);
    let e = parse("listen = []").unwrap_err().to_string();
    assert!(e.contains("at least one address"), "{e}");
    // Whole numbers are shown as written, not rounded through a float.
    let e = parse("max-connections = 9223372036854775807")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("9223372036854775807 is not a whole number from 1 to 4294967295"),
        "{e}"
    );
    let e = parse("max-frame-size = true").unwrap_err().to_string();
    assert!(e.contains("key `max-frame-size`"), "{e}");
    assert_eq!(line_column("ab\ncdé\nf", 7), (2, 4));
    assert_eq!(line_column("", 5), (1, 1));
}

#[test]
fn byte_sizes() {
    assert_eq!(byte_size("1000"), Ok(1000));
    assert_eq!(byte_size("512K"), Ok(512 << 10));
    assert_eq!(byte_size("16m"), Ok(16 << 20));
    assert_eq!(byte_size("1GiB"), Ok(1 << 30));
    for bad in ["", "0", "M", "12X", "-1", "99999999999999999999G"] {
        assert!(byte_size(bad).is_err(), "{bad}");
    }
}
