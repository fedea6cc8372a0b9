//! `secutix-sync demo`: the simulator, a demo configuration and store, handed to the real daemon.

use super::*;

pub(crate) fn demo_command(sources: &Sources, args: DemoArgs) -> anyhow::Result<ExitCode> {
    use secutix_sync::demo::{Demo, DemoOptions, OUTPUT_DIR};
    if let Some(file) = &sources.file {
        eprintln!(
            "note: the demo ignores --config / SECUTIX_SYNC_CONFIG ({}): it writes its own configuration",
            file.display()
        );
    }
    let opts = DemoOptions {
        once: args.once,
        soap: args.soap,
        dir: args.dir,
        products: usize::try_from(args.products).unwrap_or(secutix_sync::demo::DEFAULT_PRODUCTS),
        listen: args.listen,
        output: PathBuf::from(OUTPUT_DIR),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let demo = Demo::prepare(opts).await.context("while starting the demo")?;
        if args.once {
            let output = demo.output().to_owned();
            let result = demo.once().await;
            let (code, summary) = match result {
                Ok(v) => (ExitCode::SUCCESS, v),
                Err(v) => (ExitCode::from(1), v),
            };
            print_once(&summary);
            let files = std::fs::read_dir(&output)
                .map(|d| {
                    d.flatten()
                        .filter(|f| {
                            let n = f.file_name().to_string_lossy().into_owned();
                            n.starts_with("secutix-") && n.ends_with(".json")
                        })
                        .count()
                })
                .unwrap_or(0);
            println!(
                "demo-output: {files} entry files and index.json in {}",
                output.display()
            );
            return Ok(code);
        }
        let (shutdown, reload) = signals()?;
        // A closed stdout (the terminal went, a pipe reader stopped) must not stop the demo: lines are
        // written without println!'s panic.
        let say = |text: &str| {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{text}");
        };
        say(&demo.banner(&cli_name()));
        demo.run(shutdown, reload).await.context("while running the demo")?;
        say(&format!("demo stopped; the entry files stay in ./{OUTPUT_DIR}/"));
        Ok(ExitCode::SUCCESS)
    })
}
