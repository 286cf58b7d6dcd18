// Pure Java, no Android dependency: the same code runs in the app and on a desktop JVM,
// where pocketbert's tests check it against the Python tokenizer.
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

// ./gradlew :tokenizer:parityCheck -Pvocab=vocab.txt -Pvectors=vectors.tsv
tasks.register<JavaExec>("parityCheck") {
    classpath = sourceSets["test"].runtimeClasspath
    mainClass.set("dev.pocketbert.tokenizer.ParityCheck")
    args(project.findProperty("vocab") ?: "vocab.txt", project.findProperty("vectors") ?: "vectors.tsv")
}
