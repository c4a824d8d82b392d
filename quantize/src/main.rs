fn main() {
    println!("framecast-quantize: not yet implemented");
}
