/// The version of demucsd, demucsctl and the engine (one release number for the whole project).
public enum DemucsdVersion {
    public static let string = "0.1.0"
}
