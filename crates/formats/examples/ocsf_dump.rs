//! Print OCSF Parquet rows as JSON lines (all columns): `cargo run -p ipsight-formats --example ocsf_dump -- FILE...`
use parquet::file::reader::{FileReader, SerializedFileReader};

fn main() {
    for p in std::env::args().skip(1) {
        let f = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
        for row in f.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let obj: serde_json::Map<_, _> = row
                .get_column_iter()
                .map(|(k, v)| (k.clone(), ipsight_formats::ocsf::field_json(v)))
                .collect();
            println!("{}", serde_json::Value::Object(obj));
        }
    }
}
