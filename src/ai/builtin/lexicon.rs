//! The built-in analyzer's vocabulary: cue families per language, and its reply templates.
//!
//! A cue is matched on the ticket's words after lowercasing and folding accents (so `où` and `ou`,
//! `Müller` and `Muller` match alike; write cues with or without accents):
//! - `word` matches that whole word, `word word` those words in a row (within one sentence);
//! - `stem*` matches words starting with `stem`, `*stem` words ending with it and `*stem*` words
//!   containing it (German compounds: `*rechnung*` in `Rechnungskopie`);
//! - `a … b` matches `a` followed by `b` within eight words of the same sentence (German puts the
//!   verb last: `kann … nicht arbeiten`);
//! - an apostrophe splits words (`can't` is `can` `t`, `n'arrive` is `n` `arrive`); `¿` is a word;
//! - `!phrase` is an exclusion: a cue of the same family found inside it does not count (`plan` is a
//!   billing word, but not in `to plan`).
//!
//! [`COMMON`] holds words shared across languages (product and technical words people write in
//! English whatever their language); a ticket is read with `COMMON` and the lexicon of its detected
//! language, or with every lexicon when the language is none of these.

/// One language's cue families. Every field lists cues separated by `|` (see the module
/// documentation).
pub struct Lexicon {
    // Categories: each cue found adds one to its category's score (two when it is in the title).
    pub billing: &'static str,
    pub bug: &'static str,
    pub account: &'static str,
    pub feature_request: &'static str,
    pub how_to: &'static str,
    pub other: &'static str,

    // Sentiment.
    /// Frustration, anger, threats to leave.
    pub negative: &'static str,
    /// Praise.
    pub positive: &'static str,
    /// Thanks that are meant (`thanks a lot`, `vielen Dank`): positive.
    pub thanks: &'static str,
    /// A bare thank-you: positive unless it closes a question or a request (then it is politeness).
    pub thanks_plain: &'static str,
    /// Politeness that is no praise (`thanks in advance`, `merci de …`): nothing.
    pub thanks_polite: &'static str,
    /// A praise word right after one of these is a wish (`would be great`), not praise.
    pub conditional: &'static str,
    /// Makes the sentiment word after it count twice (`really frustrated`).
    pub intensifier: &'static str,
    /// Turns the sentiment word after it around (`not happy`, `nicht zufrieden`).
    pub negator: &'static str,

    // Priority.
    /// An outage (`is down`, `Komplettausfall`, `panne`); not after `after`/`nach`/`après`/`tras`.
    pub outage: &'static str,
    /// A security breach.
    pub breach: &'static str,
    /// Losing something (`gone`, `verschwunden`, `disparu`); data loss with a [`Lexicon::data`] word.
    pub loss: &'static str,
    /// What a customer can lose (`tickets`, `Kontakte`, `historique`).
    pub data: &'static str,
    /// Many people at once (`nobody`, `alle Kunden`, `tous nos agents`); a number followed by a
    /// [`Lexicon::people`] word counts too.
    pub scale: &'static str,
    pub people: &'static str,
    /// Something failing (`error`, `abgelehnt`, `refusé`); with [`Lexicon::scale`]: critical.
    pub failure: &'static str,
    /// `can`, `kann`, `peut`, `puede`: a failure when negated (`none of our agents can`).
    pub ability: &'static str,
    /// This customer cannot get on with their work.
    pub blocking: &'static str,
    /// …but has a way around it.
    pub workaround: &'static str,
    /// Takes money (`charged`, `abgebucht`, `prélevé`, `cobrado`).
    pub charge: &'static str,
    /// Makes a charge a wrong one (`twice`, `trotzdem`, `au lieu de`, `siguen`).
    pub wrong_charge: &'static str,
    /// The customer says it is minor (`cosmetic`, `no rush`, `kein Drama`, `petit détail`).
    pub minor: &'static str,
    /// The customer asks for something to be done (`could you`, `bitte`, `pouvez-vous`, `pueden`).
    pub request: &'static str,
    /// Function words (`the`, `und`, `nous`, `los`): they tell the language when `whatlang` is unsure.
    pub stopwords: &'static str,
    /// An outage word right after one of these is a past one (`after the outage`, `après la panne`).
    pub past: &'static str,
}

/// Product and technical words used whatever the language.
pub const COMMON: Lexicon = Lexicon {
    billing: "vat | iban | sepa | checkout",
    bug: "bug | error | crash* | 404 | 500 | 502 | 503 | 504 | timeout | http | bad gateway \
          | offline",
    account: "sso | saml | 2fa | mfa | okta | azure ad | login | admin | ldap | scim",
    feature_request: "feature request | roadmap",
    how_to: "faq",
    other: "dpa | gdpr | soc 2 | soc2 | iso 27001 | partner* | sponsor* | webinar | meetup",
    negative: "",
    positive: "",
    thanks: "",
    thanks_plain: "",
    thanks_polite: "",
    conditional: "",
    intensifier: "",
    negator: "",
    outage: "",
    breach: "phishing",
    loss: "",
    data: "",
    scale: "",
    people: "",
    failure: "error | 404 | 500 | 502 | 503 | 504 | timeout | offline | bad gateway",
    ability: "",
    blocking: "",
    workaround: "workaround",
    charge: "",
    wrong_charge: "",
    minor: "",
    request: "",
    stopwords: "",
    past: "",
};

pub const EN: Lexicon = Lexicon {
    billing: "bill | billed | billing | bills | charge | charged | charges | invoice* | refund* \
              | payment* | pay | paid | subscription* | plan | pricing | price | prices | tax \
              | card | discount | renewal | renew | upgrade | downgrade | receipt* | credited \
              | credit note | overcharged | !to plan | !plan to",
    bug: "broken | fails | failing | failed | fail | doesn t work | does not work | not working \
          | stopped working | went wrong | returns nothing | empty | blank | spinning \
          | unavailable | stuck | missing | gone | don t add up | doesn t add up | wrong | slow \
          | crashes | closes | not going out | never receive* | unreadable | invisible | is down \
          | outage | doesn t find | another company s | glitch | exception | freezes | loops \
          | typo | misspel* | spelling | late | delayed | delay* | invalid | timed out \
          | times out | timing out | stops | stopped | no longer | anymore | grey screen \
          | gray screen | blank screen | since the update | after the update | since the release \
          | after updating | not showing | doesn t show | don t show | not visible | disconnect* \
          | not syncing | messes up | broke | keeps",
    account: "password* | log in | logged out | sign in | signin | sign-in | locked out | locked \
              | two-factor | two factor | authenticator | access | invite* | invitation* \
              | account | owner* | role | permission* | credentials | get in | get back in \
              | compromised | suspicious login",
    feature_request: "would be great | would be nice | would be handy | would be useful \
                      | would be helpful | would be good | it d be | it would be | would love \
                      | we d love | would save | could you add | please add | add support \
                      | any plans | do you plan | planned | suggestion* | idea | wish | still no \
                      | no way to | there s no | limitation | would make | would help \
                      | support for | native | asked for this",
    how_to: "how do i | how can i | how do we | how can we | how to | where do i | where can i \
             | where is | is there a way | is it possible | can i | what s the best way \
             | what is the best way | recommended way | best way | explain | docs \
             | documentation | cant find | can t find | is there a | is there any way \
             | is there an option | can they | can agents",
    other: "partnership | reseller | consultancy | sales | sales rep | questionnaire \
            | data processing agreement | hosted | hosting | legal | procurement | event \
            | conference",
    negative: "angry | annoyed | annoying | awful | disappointed | disappointing | frustrated \
               | frustrating | furious | hate | horrible | ridiculous | terrible | unacceptable \
               | unhappy | useless | worst | shocked | shady | joke | fed up | sick of \
               | costing us | second time | third time | another vendor | other tools \
               | we re cancelling | we are cancelling | dispute | disputing | lawyer \
               | i m paying | nobody responds | still no | still not | waste of | pathetic \
               | outraged | patience | scam | rip off | rip-off",
    positive: "great | excellent | fantastic | lovely | awesome | amazing | wonderful \
               | brilliant | superb | helpful | kudos | well done | appreciate* | pleased | glad \
               | impressed | love | loves | keep up | keep it up",
    thanks: "thanks a lot | thank you so much | many thanks | thanks so much | thanks to \
             | thank you for | thanks for",
    thanks_plain: "thanks | thank you | thx",
    thanks_polite: "thanks in advance | thank you in advance | thanks for considering \
                    | thank you for considering",
    conditional: "would | d | could",
    intensifier: "really | very | so | extremely | totally | absolutely | pretty",
    negator: "not | no | never | t | nothing | hardly | none | nobody",
    outage: "outage | is down | are down | went down | everything is down | service unavailable \
             | down for everyone",
    breach: "breach | hacked | compromised | suspicious login | unauthorized | unauthorised \
             | another company s | data leak | leaked",
    loss: "gone | lost | disappeared | vanished | missing | wiped | were deleted | been deleted \
           | got deleted | data loss",
    data: "tickets | ticket | contacts | data | files | attachments | history | records \
           | conversations",
    scale: "nobody | no one | none of our | none of the | everyone | everybody | every single \
            | hundreds | whole … team | entire … team | whole company | all our | all of our \
            | all users | all customers | all agents | every customer | every member \
            | every user | company-wide | every … request | all … requests",
    people: "agents | users | staff | employees | people | colleagues | members | customers",
    failure: "fail* | unavailable | loops | locked out | could not be processed | cannot | can t \
              | couldn t | unable | rejected | declined",
    ability: "can | could | able",
    blocking: "locked out | is locked | can t get in | can t even get in | cannot get in \
               | can t get past | can t work | cannot work | can t log in | can t sign in \
               | can t access | cannot access | no other way | no workaround | is stuck \
               | are stuck | stuck in | blocked | blocking | every time | nothing works \
               | need to get in | unable to | got locked | not a single | no alternative",
    workaround: "works | in the meantime | for now | the web version | so we use | by hand \
                 | manually",
    charge: "charged | charging | billed | bills | billing us | debited | taken | overcharged",
    wrong_charge: "twice | two times | double | duplicate* | still | after cancel* | despite \
                   | instead of | wrong amount | too much | overcharged | the difference | wrong \
                   | unauthori* | don t recognise | don t recognize | not recognised \
                   | not recognized | without notice | without asking",
    minor: "cosmetic | minor | small thing | not urgent | no rush | just fyi | fyi | typo \
            | not a big deal | no big deal | just thought you d want to know",
    request: "please | could you | can you | can u | would you please | we d like | i d like \
              | we would like | we need | i need | needs | require* | can we | asking for \
              | never called back | waiting | !need to",
    stopwords: "the | and | is | are | to | of | we | our | my | it | for | this | with | you \
                | i | in | on | have | how | what | that | from",
    past: "after",
};

pub const DE: Lexicon = Lexicon {
    billing: "*rechnung* | abbuchung* | abgebucht | eingezogen | lastschrift | *zahlung* \
              | bezahl* | *tarif* | abo | *abos | jahresabo | preis* | gutschrift | erstatt* \
              | ruckzahlung | kundigung | gekundigt | ust* | umsatzsteuer* | mwst | vorsteuer \
              | betrag | rabatt | *beitrag | kreditkarte | verrechnet | berechnet",
    bug: "fehler* | funktioniert nicht | geht nicht | sturzt … ab | absturz* | bricht … ab \
          | hangt | bleibt … stehen | lad* nicht | nicht erreichbar | *ausfall | verschwunden \
          | sind weg | ist weg | falsch | langsam | doppelt | tippfehler | fehlgeschlagen \
          | schlagt … fehl | schliesst sich | nicht angezeigt | nicht ubernommen | abgeschnitten \
          | datenleck | sicherheitsvorfall | behoben | findet keine | finde ich nichts | kaputt \
          | dauert | ungultig | verspatet | nicht mehr | keine … mehr | nicht sichtbar \
          | seit dem update | nach dem update | verschoben | leer | zeigt … nicht \
          | kommen … nicht … an | kommt … nicht … an | synchronisiert nicht | getrennt \
          | hangt sich auf",
    account: "passwort* | kennwort | anmeld* | *anmeldung | einlogg* | login | *zugang* \
              | zugriff* | konto | benutzer* | nutzerkonto | zwei-faktor* | gesperrt \
              | deaktiviert | rolle | admin* | zugangsdaten | kommt rein | komme … rein \
              | reinkommen",
    feature_request: "wunsch | vorschlag | verbesserungsvorschlag | idee | habt ihr vor \
                      | haben sie vor | ist geplant | geplant | konnte man | ware | waren \
                      | immer noch keine | wurde uns | wurden uns | wunschen | gewunscht",
    how_to: "wie … ich | wie … man | wo … ich | gibt es eine moglichkeit | kann man | doku* \
             | anleitung | welchen … muss ich | wie kann | gibt es eine einstellung \
             | gibt es eine option | gibt es",
    other: "partnerprogramm | agentur | vertrieb | angebot | av-vertrag | auftragsverarbeitung* \
            | datenschutz* | dsgvo | gehostet | rechenzentr* | serverstandort | veranstaltung",
    negative: "frechheit | argerlich | nervig | enttausch* | unzumutbar | zumutung \
               | reicht es mir | es reicht | anwalt | sauer | unverschamt | katastroph* \
               | inakzeptabel | zu wechseln | kundigen wir | frust* | immer noch keine \
               | immer noch nicht | dritte mal | zweite mal | schockiert | lacherlich | geduld \
               | abzocke",
    positive: "super | toll | klasse | top | begeistert | hervorragend | lob | zufrieden \
               | grossartig | prima | spitze | perfekt | der hammer | weiter so",
    thanks: "vielen dank | herzlichen dank | dankeschon | bedanken | danke fur | danke euch \
             | tausend dank",
    thanks_plain: "danke",
    thanks_polite: "danke vorab | danke im voraus | vielen dank im voraus | vielen dank vorab \
                    | danke schon vorab",
    conditional: "ware | waren | wurde | konnte",
    intensifier: "sehr | wirklich | echt | total | absolut | extrem | ausserst",
    negator: "nicht | kein | keine | keinen | keiner | nie | niemand | nichts",
    outage: "*ausfall | nicht erreichbar | stoerung | storung | geht gar nichts | down",
    breach: "datenleck | sicherheitsvorfall | fremder zugriff | unbekannten ip | gehackt \
             | anderen unternehmens | anderer firmen | unbefugt*",
    loss: "verschwunden | sind weg | ist weg | verloren | geloscht | datenverlust",
    data: "tickets | ticket | kontakte | daten | kundendaten | dateien | anhange \
           | kundenanfragen | verlauf | historie",
    scale: "niemand | kein einziger | keiner der | alle kunden | alle kollegen \
            | alle mitarbeiter | alle nutzer | alle agenten | alle benutzer | gesamtes team \
            | gesamte team | ganze team | ganzen firma | ganze firma | betroffen sind alle \
            | jede anfrage | alle anfragen",
    people: "agenten | kollegen | mitarbeiter | mitarbeitende | kunden | nutzer | benutzer \
             | personen | leute",
    failure: "fehler | nicht erreichbar | verweigert | abgelehnt | scheitert | nichts tun \
              | nicht mehr | kommt rein | kommt … rein",
    ability: "kann | konnen | konnte | konnten",
    blocking: "kann … nicht arbeiten | nicht arbeiten | keine alternative \
               | keine andere moglichkeit | deaktiviert | gesperrt | wieder rein \
               | nicht mehr … anmelden | nicht mehr … einloggen | steht komplett | blockiert \
               | jedes mal | geht gar nichts | verworfen | gar nicht | uberhaupt nicht \
               | keine … mehr",
    workaround: "funktioniert | solange | vorerst | von hand | umweg | kann arbeiten | gehen \
                 | manuell",
    charge: "abgebucht | eingezogen | belastet | berechnet | abgerechnet | kassiert",
    wrong_charge: "zweimal | doppelt* | trotzdem | immer noch | weiterhin | statt | anstatt \
                   | falsch* | zu viel | differenz | nicht autorisiert | ohne zustimmung \
                   | ohne vorwarnung | nicht nachvollziehbar",
    minor: "nur zur info | kein drama | kosmetisch* | tippfehler | nicht dringend | kleinigkeit",
    request: "bitte | konnten sie | konnen sie | konnen wir | wir mochten | ich mochte \
              | benotigen | brauchen | braucht | warte | nachgefragt",
    stopwords: "der | die | das | und | ist | ich | wir | nicht | mit | ein | eine | einen | auf \
                | fur | sie | wie | bei | uns | unsere | es | zu | von | den | dem | mein | kann \
                | bitte | hallo | seit | auch | wird | werden",
    past: "nach",
};

pub const FR: Lexicon = Lexicon {
    billing: "factur* | prelev* | debit* | rembours* | paiement* | payer | regler | abonnement* \
              | tarif* | prix | tva | ht | ttc | formule | offre annuelle | avoir | carte \
              | montant | doublon | geste commercial | resili*",
    bug: "erreur* | ne fonctionne | ne marche | plante | bloque* | rien ne se passe \
          | inaccessible | panne | disparu* | lent* | lenteur* | mal | faute* | bug | se ferme \
          | chargement infini | page blanche | ne partent pas | ne passent pas | echoue | efface \
          | perdu* | vides | plus rien | invalide | en retard | ne … plus | plus aucun \
          | depuis la mise a jour | apres la mise a jour | pas traduit | non traduit \
          | synchronis* | deconnect* | ne s affiche | il manque | manquant*",
    account: "mot de passe | connecter | connexion | authentifi* | double authentification \
              | acces | compte | utilisateur* | utilisatrice* | droits | deconnect* | reconnect* \
              | identifiants | debloque* | deblocage | pirate* | administrat* \
              | codes de validation | codes de secours",
    feature_request: "ce serait | il serait | serait | suggestion | idee | prevoyez-vous \
                      | prevoyez vous | est-ce prevu | est ce prevu | nous aimerions \
                      | aimerions pouvoir | feuille de route | eviterait | toujours pas de \
                      | pratique | permettrait | faudrait | aimerait",
    how_to: "comment | ou puis-je | ou puis je | ou trouver | ou changer | ou se trouve \
             | est-il possible | est il possible | est-ce possible | quelle est la meilleure \
             | je trouve pas | je ne trouve pas | documentation | est-ce qu on peut \
             | est ce qu on peut | peut-on | on peut",
    other: "partenariat | revendeur* | integrateur* | commercial | !geste commercial | devis \
            | rgpd | dpo | sous-traitance | traitement des donnees | heberge* | hebergement \
            | evenement*",
    negative: "inadmissible | inacceptable | penible | furieux | furieuse | decevant* | decu* \
               | marre | insupportable | regarder ailleurs | voir ailleurs | saisirons \
               | scandal* | honte* | a bout | exaspere* | agac* | on paie pour | patience \
               | arnaque | troisieme fois | troisieme reclamation | deuxieme fois \
               | toujours pas de | ras le bol | lamentable | nul",
    positive: "bravo | felicitations | excellent* | genial | impeccable | au top | formidable \
               | parfait | ravi* | satisfait* | apprecie* | super | top | plaisir | adore*",
    thanks: "merci beaucoup | un grand merci | merci infiniment | merci pour | merci a \
             | mille mercis",
    thanks_plain: "merci",
    thanks_polite: "merci d avance | merci par avance | merci de",
    conditional: "serait | seraient | aimerait",
    intensifier: "tres | vraiment | franchement | trop | totalement | absolument",
    negator: "pas | ne | n | jamais | aucun | aucune | rien | plus",
    outage: "panne | panne generale | inaccessible | plus rien ne fonctionne | hors service",
    breach: "pirate* | fuite de donnees | faille | autre entreprise | acces non autorise \
             | intrusion",
    loss: "disparu* | perdu* | efface* | supprime* | perte de donnees | vides",
    data: "tickets | contacts | donnees | historique | fichiers | pieces jointes | champs \
           | conversations",
    scale: "personne ne | aucun de nos | aucun membre | plus aucun de nos | tous nos \
            | tous les utilisateurs | tout le monde | toute l equipe | tout le service \
            | tous nos clients | aucun de nos clients | tous les clients | toutes les requetes \
            | chaque requete",
    people: "agents | salaries | utilisateurs | personnes | clients | collaborateurs | membres \
             | employes",
    failure: "erreur | refuse* | impossible | a l arret | n arrive | bloque* | echoue | panne",
    ability: "peut | peuvent | peux | pouvons | arrive",
    blocking: "ne peux plus | ne peut plus | ne pouvons plus | impossible de me connecter \
               | impossible de travailler | bloque* | a l arret | plus aucune | aucun mail \
               | systematiquement | a chaque fois | du tout | peux pas me connecter \
               | pas de solution de rechange | pas d alternative | aucune alternative",
    workaround: "fonctionne* | marche bien | tout marche | en attendant | contourn* \
                 | on arrive a travailler | pour l instant | pour le moment | a la main \
                 | on s en sort",
    charge: "debite* | preleve* | prelever | facture* | facturation",
    wrong_charge: "deux fois | doublon | continuez | toujours | malgre | au lieu de | en trop \
                   | apres resiliation | la difference | double | non autorise* | sans prevenir \
                   | sans notre accord",
    minor: "petit detail | pas bloquant | faute d orthographe | pas urgent | rien d urgent \
            | cosmetique | rien de grave | mineur",
    request: "pourriez-vous | pourriez vous | pouvez-vous | pouvez vous | merci de \
              | nous souhaitons | je souhaite | demande | !demande de | s il vous plait | svp \
              | pouvons-nous | pouvons nous | attends",
    stopwords: "le | la | les | et | est | je | nous | pas | des | une | un | pour | avec | sur \
                | vous | que | qui | dans | du | au | ne | mon | notre | nos | bonjour | merci \
                | depuis",
    past: "apres",
};

pub const ES: Lexicon = Lexicon {
    billing: "cobr* | cargo | cargado | factura* | reembolso | devuelvan | pago* | pagar \
              | pagado | suscripcion | plan | precio* | iva | cuota | tarjeta | prorratea | nif \
              | razon social | importe | datos fiscales | dinero | dar de baja | darnos de baja \
              | baja del servicio",
    bug: "error | no funciona | falla* | se cierra | caida | no carga | vacio | vacia \
          | desaparec* | borrado* | lento | lentitud | lentisimo | no llegan | no se envian \
          | no se guardan | cortado | desalineado* | descolocado* | fuga de datos | brecha \
          | tardan | tilde | errata | ortografia | no valida | no valido | retraso* | ya no \
          | dejan de | deja de | no se sube* | desconecta* | no abre | no se muestra* \
          | desde la actualizacion | tras la actualizacion | se superpone* | no aparece* \
          | no se sincroniza* | no se puede | no se pueden",
    account: "contrasena | iniciar sesion | inicio de sesion | inicios de sesion | acceso \
              | cuenta | usuario* | credenciales | verificacion en dos pasos | permisos \
              | administrador* | dar de alta | entrar",
    feature_request: "estaria genial | estaria bien | seria util | seria genial | sugerencia \
                      | propuesta | idea | tienen previsto | esta previsto | nos encantaria \
                      | podrian ampliar | podrian anadir | seguimos sin poder | pidiendo \
                      | hoja de ruta | vendria | gustaria | ayudaria",
    how_to: "¿ como | ¿ donde | donde se | donde genero | donde encuentro | donde puedo \
             | hay alguna manera | hay alguna forma | se puede | que pasos | es posible \
             | como puedo | una duda | se pueden | !no se pueden | !no se puede",
    other: "partners | revender | consultora | ventas | presupuesto | proteccion de datos \
            | encargado del tratamiento | encargo de tratamiento | alojados | servidores \
            | evento* | patrocin*",
    negative: "harto* | harta* | frustrante | frustrad* | desastre | molest* | decepcion* \
               | desesperante | insoportable | denunci* | abogado | inaceptable | verguenza \
               | indignad* | nos vamos | cambiar de herramienta | cambiar de proveedor \
               | tercera vez | seguimos sin | ridiculo | paciencia | abuso | estafa",
    positive: "excelente | fantastico | genial | encantados | encantado | enhorabuena | felicit* \
               | da gusto | de diez | perfecto | estupendo | maravill* | contentos | sigan asi",
    thanks: "muchas gracias | mil gracias | gracias por | agradecer | agradecemos",
    thanks_plain: "gracias",
    thanks_polite: "gracias de antemano | gracias por adelantado",
    conditional: "seria | estaria | encantaria",
    intensifier: "muy | realmente | totalmente | super | absolutamente",
    negator: "no | nunca | nada | ni | sin | ningun | ninguno | ninguna",
    outage: "caida | caida total | fuera de servicio | no carga para nadie",
    breach: "brecha | fuga de datos | robad* | hackead* | otra empresa | acceso sospechoso \
             | no autorizado",
    loss: "desaparecido | desaparecieron | perdido* | borrado* | eliminado* | perdida de datos",
    data: "tickets | contactos | datos | clientes | archivos | historial | adjuntos",
    scale: "nadie | ninguno de | ningun cliente | ningun usuario | !a ningun cliente \
            | !a ningun usuario | todos los usuarios | todo el equipo | todo el soporte \
            | todos nuestros | todos los clientes | todas las peticiones | cada peticion",
    people: "agentes | empleados | usuarios | personas | clientes | companeros | trabajadores",
    failure: "error | falla* | no carga | parad* | bloquead* | no valid* | no puede | no pueden \
              | no consigue",
    ability: "puede | pueden | puedo | podemos | consigue | consiguen",
    blocking: "no puedo atender | no puedo trabajar | no puedo entrar | no puedo acceder \
               | no podemos trabajar | otra forma | bloquead* | parad* | falla siempre \
               | cada vez | no hay manera | ningun | sin alternativa",
    workaround: "funciona | de momento | sin problema | se puede trabajar | puedo entrar \
                 | por ahora | mientras tanto | manualmente",
    charge: "cobr* | cargado | cargo",
    wrong_charge: "dos veces | duplicado | repetido | siguen | sigue | a pesar | en lugar de \
                   | de mas | la diferencia | no reconocido | no corresponde | no autorice \
                   | no autorizado | sin avisar | doble",
    minor: "nada grave | es un detalle | solo estetico | estetico | no es urgente | sin prisa \
            | menor | tilde | errata",
    request: "pueden | podrian | por favor | queremos | necesitamos | necesito | necesita \
              | podemos | quisiera | espero",
    stopwords: "el | la | los | las | y | es | que | por | para | con | una | un | no | mi \
                | nuestro | nuestros | nuestra | hola | pero | desde | del | al | se | lo | esta \
                | gracias",
    past: "tras | despues",
};

/// Reply sentences of one language: an opening per sentiment, a body per category.
pub struct Replies {
    pub opening_negative: &'static str,
    pub opening_positive: &'static str,
    pub opening_neutral: &'static str,
    /// Added for a critical ticket.
    pub urgent: &'static str,
    pub billing: &'static str,
    pub bug: &'static str,
    pub account: &'static str,
    pub feature_request: &'static str,
    pub how_to: &'static str,
    pub other: &'static str,
}

pub const REPLIES_EN: Replies = Replies {
    opening_negative: "Hello, I'm sorry for the trouble this is causing you.",
    opening_positive: "Hello, and thank you for your kind words.",
    opening_neutral: "Hello, thanks for reaching out.",
    urgent: "We are treating this as urgent.",
    billing: "I'm checking your billing records now and will confirm the charges and invoices concerned shortly.",
    bug: "I've passed the details to our engineers. Could you tell us the steps to reproduce the problem, when it started and any message you see?",
    account: "For your security, please confirm the email address of the user concerned, and I'll help you restore or adjust their access.",
    feature_request: "I've shared your suggestion with our product team, who review every request.",
    how_to: "Here is how to do that step by step, and I'm happy to walk you through it if anything is unclear.",
    other: "I'm making sure your message reaches the right person and will get back to you shortly.",
};

pub const REPLIES_DE: Replies = Replies {
    opening_negative: "Guten Tag, es tut mir leid, dass Ihnen das Ärger bereitet.",
    opening_positive: "Guten Tag, vielen Dank für Ihre freundlichen Worte.",
    opening_neutral: "Guten Tag, vielen Dank für Ihre Nachricht.",
    urgent: "Wir behandeln das mit höchster Dringlichkeit.",
    billing: "Ich prüfe gerade Ihre Abrechnung und bestätige Ihnen in Kürze die betroffenen Buchungen und Rechnungen.",
    bug: "Ich habe die Details an unsere Techniker weitergegeben. Können Sie uns die Schritte nennen, mit denen sich das Problem reproduzieren lässt, und seit wann es auftritt?",
    account: "Bitte bestätigen Sie zu Ihrer Sicherheit die E-Mail-Adresse der betroffenen Person; dann helfe ich Ihnen, den Zugang wiederherzustellen oder anzupassen.",
    feature_request: "Ich habe Ihren Vorschlag an unser Produktteam weitergegeben, das jede Anfrage prüft.",
    how_to: "Hier ist Schritt für Schritt beschrieben, wie das geht; gern gehe ich es auch mit Ihnen gemeinsam durch.",
    other: "Ich leite Ihre Nachricht an die richtige Person weiter und melde mich in Kürze.",
};

pub const REPLIES_FR: Replies = Replies {
    opening_negative: "Bonjour, je suis désolé pour la gêne occasionnée.",
    opening_positive: "Bonjour, et merci pour votre gentil message.",
    opening_neutral: "Bonjour, merci pour votre message.",
    urgent: "Nous traitons votre demande en priorité absolue.",
    billing: "Je vérifie votre facturation et je reviens vers vous rapidement au sujet des montants et des factures concernés.",
    bug: "J'ai transmis les détails à nos ingénieurs. Pourriez-vous nous indiquer les étapes pour reproduire le problème et depuis quand il se produit ?",
    account: "Pour votre sécurité, merci de confirmer l'adresse e-mail de la personne concernée ; je vous aiderai ensuite à rétablir ou ajuster son accès.",
    feature_request: "J'ai transmis votre suggestion à notre équipe produit, qui étudie chaque demande.",
    how_to: "Voici comment procéder, pas à pas ; je peux aussi vous accompagner si quelque chose n'est pas clair.",
    other: "Je transmets votre message à la bonne personne et je reviens vers vous rapidement.",
};

pub const REPLIES_ES: Replies = Replies {
    opening_negative: "Hola, lamento las molestias que esto le está causando.",
    opening_positive: "Hola, y muchas gracias por sus amables palabras.",
    opening_neutral: "Hola, gracias por escribirnos.",
    urgent: "Estamos tratando este caso con la máxima urgencia.",
    billing: "Estoy revisando su facturación y le confirmaré en breve los cobros y facturas afectados.",
    bug: "He pasado los detalles a nuestros ingenieros. ¿Podría indicarnos los pasos para reproducir el problema y desde cuándo ocurre?",
    account: "Por su seguridad, confirme la dirección de correo de la persona afectada y le ayudaré a recuperar o ajustar su acceso.",
    feature_request: "He trasladado su sugerencia a nuestro equipo de producto, que revisa todas las peticiones.",
    how_to: "Le explico paso a paso cómo hacerlo; si algo no queda claro, lo vemos juntos.",
    other: "Hago llegar su mensaje a la persona adecuada y le responderé en breve.",
};
